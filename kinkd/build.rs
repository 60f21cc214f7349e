//! Links MIT libkrb5 for `kinkd::krb5`.
//!
//! Asks `pkg-config --libs krb5`, then `krb5-config --libs krb5` (both ship
//! with Debian's libkrb5-dev), and falls back to `-lkrb5 -lk5crypto
//! -lcom_err`. Debian keeps the MIT libraries in a `mit-krb5` subdirectory
//! (beside Heimdal's), which is why the `-L` flag matters.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=KRB5_LIBS");
    let flags = std::env::var("KRB5_LIBS")
        .ok()
        .or_else(|| run("pkg-config", &["--libs", "krb5"]))
        .or_else(|| run("krb5-config", &["--libs", "krb5"]))
        .unwrap_or_else(|| "-lkrb5 -lk5crypto -lcom_err".to_owned());
    let mut linked_krb5 = false;
    for flag in flags.split_whitespace() {
        if let Some(dir) = flag.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(lib) = flag.strip_prefix("-l") {
            linked_krb5 |= lib == "krb5";
            println!("cargo:rustc-link-lib=dylib={lib}");
        }
    }
    if !linked_krb5 {
        println!("cargo:rustc-link-lib=dylib=krb5");
    }
}

/// Runs a config tool; its stdout if it succeeded.
fn run(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()
}
