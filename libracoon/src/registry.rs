//! Shared by the wire codecs (IKEv2 in iked, ISAKMP here, KINK in kinkd):
//! [`crate::open_enum!`], IANA registries as enums that keep unknown values.

/// An IANA registry as a Rust enum with an `Unknown(n)` fallback (smoltcp's
/// `enum_with_unknown!` shape): every `match` decides what unknown means.
///
/// Each variant is `Name = value => "RFC SPELLING"`. Derives `Debug, Clone,
/// Copy, PartialEq, Eq, Hash`, `From<repr>` (canonicalising: a known value
/// never becomes `Unknown`), `From<Enum> for repr` and `Display` (the
/// spelling; the number for `Unknown`).
///
/// Build values from the wire with `From`, never by writing
/// `Unknown(known_value)`: that would compare unequal to the named variant.
#[macro_export]
macro_rules! open_enum {
    (
        $(#[$attr:meta])*
        $vis:vis enum $name:ident($repr:ty) {
            $(
                $(#[$vattr:meta])*
                $variant:ident = $value:literal => $text:literal
            ),+ $(,)?
        }
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vattr])* $variant, )+
            /// A value this registry does not name, kept so the caller decides what it means.
            Unknown($repr),
        }

        impl From<$repr> for $name {
            fn from(value: $repr) -> Self {
                match value {
                    $( $value => Self::$variant, )+
                    other => Self::Unknown(other),
                }
            }
        }

        impl From<$name> for $repr {
            fn from(value: $name) -> Self {
                match value {
                    $( $name::$variant => $value, )+
                    $name::Unknown(other) => other,
                }
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                match *self {
                    $( Self::$variant => f.write_str($text), )+
                    Self::Unknown(other) => write!(f, "{other}"),
                }
            }
        }
    };
}
