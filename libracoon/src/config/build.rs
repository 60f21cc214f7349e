//! Directive tree -> [`Config`]: `setval` first, then every block, then
//! `default` merged in, required settings checked and references resolved.

use std::collections::HashMap;

use super::directives;
use super::lexer::Span;
use super::model::{AddressPool, Config, Interface, Selector};
use super::names::SaProtocol;
use super::parser::{Arg, ArgKind, Block, Directive};
use super::remote::{self, RemoteDraft};
use super::spd::{self, IpsecDraft, PolicyDraft, SaDraft};
use super::value::{Cx, EnvFn, Ref, Seen};
use super::{ConfigError, ErrorKind, Loaded};

/// Interprets the (include-expanded) top-level directives.
///
/// # Errors
///
/// The first problem, located at the directive responsible.
pub(crate) fn build(directives: &[Directive], env: EnvFn<'_>) -> Result<Loaded, ConfigError> {
    let mut cx = Cx::new(env);
    setvals(&mut cx, directives)?;
    let mut builder = Builder::default();
    for d in directives {
        builder.top(&mut cx, d)?;
    }
    let config = builder.finish()?;
    Ok(Loaded {
        config,
        warnings: cx.warnings,
    })
}

/// Collects every `setval` before anything is expanded, so a variable may be
/// used before (or in another file than) its definition, as in racoon2.
fn setvals(cx: &mut Cx<'_>, directives: &[Directive]) -> Result<(), ConfigError> {
    let mut first: HashMap<String, Span> = HashMap::new();
    for d in directives.iter().filter(|d| d.name() == Some("setval")) {
        for (span, args) in setval_items(d)? {
            let [name, value] = args else {
                return Err(ConfigError::at(
                    span.clone(),
                    setval_error("expected NAME \"value\";".to_owned()),
                ));
            };
            if !is_var_name(&name.text) || value.kind == ArgKind::Comma {
                let reason = format!("'{}' is not a variable name ([A-Z][A-Z0-9_]*)", name.text);
                return Err(ConfigError::at(name.span.clone(), setval_error(reason)));
            }
            if let Some(prev) = first.get(&name.text) {
                return Err(ConfigError::at(
                    name.span.clone(),
                    ErrorKind::Duplicate {
                        what: "variable",
                        name: name.text.clone(),
                        first: prev.clone(),
                    },
                ));
            }
            first.insert(name.text.clone(), name.span.clone());
            cx.define(&name.text, value.text.clone());
        }
    }
    Ok(())
}

/// `setval { A "x"; B "y"; };` or `setval A "x";` as (position, args).
fn setval_items(d: &Directive) -> Result<Vec<(&Span, &[Arg])>, ConfigError> {
    match (&d.block, d.args.len()) {
        (Some(block), 1) => block
            .items
            .iter()
            .map(|item| match &item.block {
                None => Ok((&item.span, item.args.as_slice())),
                Some(b) => Err(ConfigError::at(
                    b.span.clone(),
                    setval_error("a value cannot be a block".to_owned()),
                )),
            })
            .collect(),
        (None, 3) => Ok(vec![(&d.span, &d.args[1..])]),
        _ => Err(shape_error(d, "setval { NAME \"value\"; ... };")),
    }
}

fn setval_error(reason: String) -> ErrorKind {
    ErrorKind::InvalidValue {
        directive: "setval".to_owned(),
        reason,
    }
}

fn is_var_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_uppercase())
        && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

fn shape_error(d: &Directive, expected: &str) -> ConfigError {
    ConfigError::at(
        d.span.clone(),
        ErrorKind::InvalidValue {
            directive: d.name().unwrap_or("?").to_owned(),
            reason: format!("expected {expected}"),
        },
    )
}

/// `default { remote {..}; policy {..}; ipsec {..}; sa {..}; };`
#[derive(Default)]
struct Defaults {
    span: Option<Span>,
    remote: Option<RemoteDraft>,
    policy: Option<PolicyDraft>,
    ipsec: Option<IpsecDraft>,
    sa: Option<SaDraft>,
}

/// A named block's draft, with its name and position.
struct Named<T> {
    name: String,
    span: Span,
    draft: T,
}

#[derive(Default)]
struct Builder {
    interface: Option<Interface>,
    /// First position of each singleton block (`interface`, ...).
    singletons: HashMap<&'static str, Span>,
    defaults: Defaults,
    remotes: Vec<Named<RemoteDraft>>,
    selectors: Vec<(Selector, Ref)>,
    policies: Vec<Named<PolicyDraft>>,
    ipsecs: Vec<Named<IpsecDraft>>,
    sas: Vec<Named<SaDraft>>,
    pools: Vec<AddressPool>,
    /// First position of each `(kind, name)`.
    names: HashMap<(&'static str, String), Span>,
}

impl Builder {
    fn top(&mut self, cx: &mut Cx<'_>, d: &Directive) -> Result<(), ConfigError> {
        match d.name() {
            Some("setval") => Ok(()),
            Some("default") => self.default_block(cx, d),
            Some("interface") => {
                let block = self.singleton(d, "interface")?;
                self.interface = Some(remote::interface(cx, block)?);
                Ok(())
            }
            Some("resolver") => {
                let block = self.singleton(d, "resolver")?;
                remote::resolver(cx, block)
            }
            Some("remote") => self.named(cx, d, "remote"),
            Some("selector") => self.named(cx, d, "selector"),
            Some("policy") => self.named(cx, d, "policy"),
            Some("ipsec") => self.named(cx, d, "ipsec"),
            Some("sa") => self.named(cx, d, "sa"),
            Some("addresspool") => self.named(cx, d, "addresspool"),
            _ => Err(directives::unknown(d, "the top level")),
        }
    }

    /// `NAME { ... };` that may appear once.
    fn singleton<'d>(
        &mut self,
        d: &'d Directive,
        what: &'static str,
    ) -> Result<&'d Block, ConfigError> {
        let block = bare_block(d)?;
        if let Some(first) = self.singletons.get(what) {
            return Err(ConfigError::at(
                d.span.clone(),
                ErrorKind::Duplicate {
                    what: "block",
                    name: what.to_owned(),
                    first: first.clone(),
                },
            ));
        }
        self.singletons.insert(what, d.span.clone());
        Ok(block)
    }

    fn default_block(&mut self, cx: &mut Cx<'_>, d: &Directive) -> Result<(), ConfigError> {
        let block = self.singleton(d, "default")?;
        self.defaults.span = Some(d.span.clone());
        let mut seen = Seen::default();
        for item in &block.items {
            let name = item.name().unwrap_or("");
            if !matches!(name, "remote" | "policy" | "ipsec" | "sa") {
                return Err(directives::unknown(item, "the default block"));
            }
            seen.once(item)?;
            let body = bare_block(item)?;
            let context = format!("the default {name} block");
            match name {
                "remote" => self.defaults.remote = Some(remote::remote_body(cx, body, &context)?),
                "policy" => self.defaults.policy = Some(spd::policy_body(cx, body, &context)?),
                "ipsec" => self.defaults.ipsec = Some(spd::ipsec_body(cx, body, &context)?),
                _ => self.defaults.sa = Some(spd::sa_body(cx, body, &context)?),
            }
        }
        Ok(())
    }

    /// `KIND NAME { ... };`
    fn named(
        &mut self,
        cx: &mut Cx<'_>,
        d: &Directive,
        kind: &'static str,
    ) -> Result<(), ConfigError> {
        let (name, block) = named_block(cx, d)?;
        if let Some(first) = self.names.get(&(kind, name.clone())) {
            return Err(ConfigError::at(
                d.span.clone(),
                ErrorKind::Duplicate {
                    what: kind,
                    name,
                    first: first.clone(),
                },
            ));
        }
        self.names.insert((kind, name.clone()), d.span.clone());
        let span = d.span.clone();
        let context = format!("{kind} '{name}'");
        match kind {
            "remote" => {
                let draft = remote::remote_body(cx, block, &context)?;
                self.remotes.push(Named { name, span, draft });
            }
            "selector" => self.selectors.push(spd::selector(cx, name, span, block)?),
            "policy" => {
                let draft = spd::policy_body(cx, block, &context)?;
                self.policies.push(Named { name, span, draft });
            }
            "ipsec" => {
                let draft = spd::ipsec_body(cx, block, &context)?;
                self.ipsecs.push(Named { name, span, draft });
            }
            "sa" => {
                let draft = spd::sa_body(cx, block, &context)?;
                self.sas.push(Named { name, span, draft });
            }
            _ => self.pools.push(spd::addresspool(cx, name, span, block)?),
        }
        Ok(())
    }

    /// Merges defaults, validates, resolves references.
    fn finish(self) -> Result<Config, ConfigError> {
        let defaults = self.defaults;
        let mut config = Config {
            interface: self.interface.unwrap_or_default(),
            addresspools: self.pools,
            ..Config::default()
        };
        let mut refs = Vec::new();
        for n in self.remotes {
            let draft = remote::merge(n.draft, defaults.remote.as_ref());
            let (remote, selector_index) = remote::finish(n.name, n.span, draft)?;
            config.remotes.push(remote);
            refs.extend(selector_index);
        }
        for (selector, policy_index) in self.selectors {
            config.selectors.push(selector);
            refs.push(policy_index);
        }
        for n in self.policies {
            let (policy, policy_refs) = n
                .draft
                .merge(defaults.policy.as_ref())
                .finish(n.name, n.span)?;
            config.policies.push(policy);
            refs.extend(policy_refs);
        }
        let mut bundles = Vec::new();
        for n in self.ipsecs {
            let (ipsec, sa_refs) = n
                .draft
                .merge(defaults.ipsec.as_ref())
                .finish(n.name, n.span)?;
            config.ipsecs.push(ipsec);
            bundles.push(sa_refs.clone());
            refs.extend(sa_refs);
        }
        for n in self.sas {
            config
                .sas
                .push(n.draft.merge(defaults.sa.as_ref()).finish(n.name, n.span)?);
        }
        refs.sort_by(|a, b| {
            (&a.span.file, a.span.line, a.span.col).cmp(&(&b.span.file, b.span.line, b.span.col))
        });
        for r in &refs {
            check_ref(&config, r)?;
        }
        for sa_refs in &bundles {
            check_bundle(&config, sa_refs)?;
        }
        if let (Some(span), Some(draft)) = (defaults.span, defaults.remote) {
            config.default_remote = Some(remote::default_remote(span, draft));
        }
        Ok(config)
    }
}

/// `NAME { ... };` with nothing between the name and the block.
fn bare_block(d: &Directive) -> Result<&Block, ConfigError> {
    match (&d.block, d.args.len()) {
        (Some(block), 1) => Ok(block),
        _ => {
            let name = d.name().unwrap_or("?");
            Err(shape_error(d, &format!("{name} {{ ... }};")))
        }
    }
}

/// `KIND NAME { ... };` -> the expanded name and the block.
fn named_block<'d>(cx: &Cx<'_>, d: &'d Directive) -> Result<(String, &'d Block), ConfigError> {
    let kind = d.name().unwrap_or("?");
    let (Some(block), [_, name]) = (&d.block, d.args.as_slice()) else {
        return Err(shape_error(d, &format!("{kind} NAME {{ ... }};")));
    };
    if name.kind == ArgKind::Comma {
        return Err(shape_error(d, &format!("{kind} NAME {{ ... }};")));
    }
    let name_text = cx.expand(&name.text, &name.span)?;
    if name_text.is_empty() {
        return Err(shape_error(d, &format!("a non-empty {kind} name")));
    }
    Ok((name_text, block))
}

/// The kind of block a reference names, from the referencing directive.
fn target(r: &Ref) -> &'static str {
    match r.directive {
        "selector_index" => "selector",
        "policy_index" => "policy",
        "remote_index" => "remote",
        "ipsec_index" => "ipsec",
        _ => "sa",
    }
}

fn check_ref(config: &Config, r: &Ref) -> Result<(), ConfigError> {
    let target = target(r);
    let exists = match target {
        "selector" => config.selector(&r.name).is_some(),
        "policy" => config.policy(&r.name).is_some(),
        "remote" => config.remote(&r.name).is_some(),
        "ipsec" => config.ipsec(&r.name).is_some(),
        _ => config.sa(&r.name).is_some(),
    };
    if exists {
        return Ok(());
    }
    Err(ConfigError::at(
        r.span.clone(),
        ErrorKind::UndefinedReference {
            directive: r.directive,
            target,
            name: r.name.clone(),
        },
    ))
}

/// A bundle holds at most one SA per protocol (racoon2's AH, ESP, IPCOMP,
/// AH_ESP, AH_IPCOMP, ESP_IPCOMP, AH_ESP_IPCOMP).
fn check_bundle(config: &Config, sa_refs: &[Ref]) -> Result<(), ConfigError> {
    let mut protocols: Vec<SaProtocol> = Vec::new();
    for r in sa_refs {
        let Some(sa) = config.sa(&r.name) else {
            continue;
        };
        if protocols.contains(&sa.sa_protocol) {
            return Err(ConfigError::at(
                r.span.clone(),
                ErrorKind::Invalid(format!(
                    "sa_index: a bundle has at most one {} SA, and '{}' is another",
                    sa.sa_protocol, r.name
                )),
            ));
        }
        protocols.push(sa.sa_protocol);
    }
    Ok(())
}
