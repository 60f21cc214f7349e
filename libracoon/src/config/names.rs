//! Algorithm and method names as spelled in racoon2.conf.
//!
//! racoon2's lexer (`cftoken.l`) lists every name; racoon3 adds the AEAD
//! ciphers `aes128_gcm16`, `aes256_gcm16`, `chacha20_poly1305` (RFC 4106 /
//! RFC 5282 / RFC 7634) and the ECP / Curve25519 DH groups (RFC 5903, RFC
//! 8031), plus `ecdsasig` as an authentication method. Each enum's `Display`
//! prints the configuration spelling, so messages quote what the operator
//! wrote.

use std::fmt;

/// Declares a name enum with its config spellings (first is canonical,
/// the others are accepted aliases).
macro_rules! config_names {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $spelling:literal $(| $alias:literal)* , )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            /// The racoon2.conf spelling.
            pub fn config_name(self) -> &'static str {
                match self {
                    $( Self::$variant => $spelling, )+
                }
            }

            /// Looks up a config spelling (or an accepted alias).
            pub fn from_config_name(name: &str) -> Option<Self> {
                match name {
                    $( $spelling $(| $alias)* => Some(Self::$variant), )+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.config_name())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.config_name())
            }
        }
    };
}

config_names! {
    /// An encryption algorithm (`kmp_enc_alg`, `esp_enc_alg`).
    pub enum EncAlgName {
        /// DES-CBC with a 64-bit IV (RFC 1829).
        DesCbcIv64 => "des_cbc_iv64",
        /// DES-CBC.
        DesCbc => "des_cbc",
        /// Triple DES CBC.
        TripleDesCbc => "3des_cbc",
        /// RC5-CBC.
        Rc5Cbc => "rc5_cbc",
        /// IDEA-CBC.
        IdeaCbc => "idea_cbc",
        /// CAST-128-CBC.
        Cast128Cbc => "cast128_cbc",
        /// Blowfish-CBC.
        BlowfishCbc => "blowfish_cbc",
        /// Triple IDEA CBC.
        TripleIdeaCbc => "3idea_cbc",
        /// DES-CBC with a 32-bit IV.
        DesCbcIv32 => "des_cbc_iv32",
        /// RC4 (listed by racoon2 as `rc4_cbc`).
        Rc4Cbc => "rc4_cbc",
        /// ESP NULL encryption (RFC 2410).
        NullEnc => "null_enc",
        /// Rijndael-CBC: AES-CBC whose key size comes from the key length.
        RijndaelCbc => "rijndael_cbc",
        /// AES-128-CBC (RFC 3602).
        Aes128Cbc => "aes128_cbc",
        /// AES-192-CBC.
        Aes192Cbc => "aes192_cbc",
        /// AES-256-CBC.
        Aes256Cbc => "aes256_cbc",
        /// AES-CTR (RFC 3686).
        AesCtr => "aes_ctr",
        /// Twofish-CBC.
        TwofishCbc => "twofish_cbc",
        /// AES-128-GCM with a 16-octet ICV (RFC 4106, RFC 5282). racoon3 only.
        Aes128Gcm16 => "aes128_gcm16",
        /// AES-256-GCM with a 16-octet ICV. racoon3 only.
        Aes256Gcm16 => "aes256_gcm16",
        /// ChaCha20-Poly1305 (RFC 7634). racoon3 only.
        Chacha20Poly1305 => "chacha20_poly1305",
    }
}

impl EncAlgName {
    /// Whether the cipher authenticates by itself, so that no separate
    /// integrity algorithm is negotiated with it.
    pub fn is_aead(self) -> bool {
        matches!(
            self,
            Self::Aes128Gcm16 | Self::Aes256Gcm16 | Self::Chacha20Poly1305
        )
    }
}

config_names! {
    /// An integrity, PRF or hash algorithm (`kmp_hash_alg`, `kmp_prf_alg`,
    /// `esp_auth_alg`, `ah_auth_alg`).
    ///
    /// racoon2 spells IKEv1 hashes without `hmac_` (`sha1`) and accepts
    /// both spellings for IKEv2 integrity; [`AuthAlgName::hmac`] maps a bare
    /// hash to its HMAC.
    pub enum AuthAlgName {
        /// No authentication (`non_auth`).
        NonAuth => "non_auth",
        /// HMAC-MD5.
        HmacMd5 => "hmac_md5",
        /// HMAC-SHA1.
        HmacSha1 => "hmac_sha1",
        /// HMAC-SHA2-256.
        HmacSha2_256 => "hmac_sha2_256",
        /// HMAC-SHA2-384.
        HmacSha2_384 => "hmac_sha2_384",
        /// HMAC-SHA2-512.
        HmacSha2_512 => "hmac_sha2_512",
        /// AES-XCBC-MAC (RFC 3566) / AES-XCBC-PRF-128 (RFC 4434).
        AesXcbc => "aes_xcbc",
        /// DES-MAC.
        DesMac => "des_mac",
        /// AES-CMAC (RFC 4494 / RFC 4615).
        AesCmac => "aes_cmac",
        /// KPDK-MD5.
        KpdkMd5 => "kpdk_md5",
        /// MD5 (IKEv1 hash spelling).
        Md5 => "md5",
        /// SHA1 (IKEv1 hash spelling).
        Sha1 => "sha1",
        /// Tiger.
        Tiger => "tiger",
        /// SHA2-256 (hash spelling).
        Sha2_256 => "sha2_256",
        /// SHA2-384 (hash spelling).
        Sha2_384 => "sha2_384",
        /// SHA2-512 (hash spelling).
        Sha2_512 => "sha2_512",
    }
}

impl AuthAlgName {
    /// The HMAC form of a bare hash name (`sha1` -> `hmac_sha1`); other
    /// names are returned unchanged. racoon2's IKEv2 reads `sha2_256` in
    /// `kmp_hash_alg` as HMAC-SHA2-256 this way.
    pub fn hmac(self) -> Self {
        match self {
            Self::Md5 => Self::HmacMd5,
            Self::Sha1 => Self::HmacSha1,
            Self::Sha2_256 => Self::HmacSha2_256,
            Self::Sha2_384 => Self::HmacSha2_384,
            Self::Sha2_512 => Self::HmacSha2_512,
            other => other,
        }
    }
}

config_names! {
    /// A Diffie-Hellman group (`kmp_dh_group`), also accepted by its IANA
    /// number (RFC 7296 Transform Type 4).
    pub enum DhGroupName {
        /// Group 1, 768-bit MODP.
        Modp768 => "modp768",
        /// Group 2, 1024-bit MODP.
        Modp1024 => "modp1024",
        /// Group 3, EC2N 155 (listed by racoon2, unusable).
        Ec2n155 => "ec2n155",
        /// Group 4, EC2N 185 (listed by racoon2, unusable).
        Ec2n185 => "ec2n185",
        /// Group 5, 1536-bit MODP.
        Modp1536 => "modp1536",
        /// Group 14, 2048-bit MODP.
        Modp2048 => "modp2048",
        /// Group 15, 3072-bit MODP.
        Modp3072 => "modp3072",
        /// Group 16, 4096-bit MODP.
        Modp4096 => "modp4096",
        /// Group 17, 6144-bit MODP.
        Modp6144 => "modp6144",
        /// Group 18, 8192-bit MODP.
        Modp8192 => "modp8192",
        /// Group 19, NIST P-256 (RFC 5903). racoon3 only.
        Ecp256 => "ecp256",
        /// Group 20, NIST P-384. racoon3 only.
        Ecp384 => "ecp384",
        /// Group 21, NIST P-521. racoon3 only.
        Ecp521 => "ecp521",
        /// Group 31, Curve25519 (RFC 8031). racoon3 only.
        Curve25519 => "curve25519",
    }
}

impl DhGroupName {
    /// The IANA transform ID (RFC 7296 §3.3.2, Transform Type 4).
    pub fn number(&self) -> u16 {
        match self {
            Self::Modp768 => 1,
            Self::Modp1024 => 2,
            Self::Ec2n155 => 3,
            Self::Ec2n185 => 4,
            Self::Modp1536 => 5,
            Self::Modp2048 => 14,
            Self::Modp3072 => 15,
            Self::Modp4096 => 16,
            Self::Modp6144 => 17,
            Self::Modp8192 => 18,
            Self::Ecp256 => 19,
            Self::Ecp384 => 20,
            Self::Ecp521 => 21,
            Self::Curve25519 => 31,
        }
    }

    /// The group with IANA number `n`, if racoon3 knows it.
    pub fn from_number(n: u16) -> Option<Self> {
        Self::ALL.iter().copied().find(|g| g.number() == n)
    }
}

config_names! {
    /// A peer authentication method (`kmp_auth_method`).
    pub enum AuthMethod {
        /// Pre-shared key.
        Psk => "psk",
        /// RSA signature.
        RsaSig => "rsasig",
        /// DSS signature.
        DssSig => "dss",
        /// ECDSA signature (RFC 4754). racoon3 only.
        EcdsaSig => "ecdsasig",
        /// RSA encryption (IKEv1; racoon2 did not support it).
        RsaEnc => "rsaenc",
        /// Revised RSA encryption (IKEv1; racoon2 did not support it).
        RsaRev => "rsarev",
        /// GSSAPI / Kerberos (IKEv1; racoon2 did not support it).
        GssapiKrb => "gssapi_krb",
    }
}

config_names! {
    /// A key management protocol (`acceptable_kmp`).
    pub enum Kmp {
        /// IKEv2 (RFC 7296).
        Ikev2 => "ikev2",
        /// IKEv1 (RFC 2409).
        Ikev1 => "ikev1",
        /// KINK (RFC 4430).
        Kink => "kink",
    }
}

config_names! {
    /// Which packets a selector matches (`direction`).
    pub enum Direction {
        /// Packets arriving for this host.
        Inbound => "inbound",
        /// Packets leaving this host.
        Outbound => "outbound",
    }
}

config_names! {
    /// What a policy does with matching packets (`action`).
    pub enum PolicyAction {
        /// Protect with SAs negotiated by a KMP.
        AutoIpsec => "auto_ipsec",
        /// Protect with manually keyed SAs (not implemented by racoon2
        /// either; parsed with a warning).
        StaticIpsec => "static_ipsec",
        /// Drop.
        Discard => "discard",
        /// Bypass IPsec (`none`, or racoon2's older `bypass`).
        None => "none" | "bypass",
    }
}

config_names! {
    /// IPsec encapsulation mode (`ipsec_mode`).
    pub enum IpsecMode {
        /// Tunnel mode.
        Tunnel => "tunnel",
        /// Transport mode.
        Transport => "transport",
    }
}

config_names! {
    /// How strictly a policy needs its SA (`ipsec_level`).
    pub enum IpsecLevel {
        /// Drop packets until the SA exists; SAs may be shared.
        Require => "require",
        /// Send in clear until the SA exists (racoon2: not implemented).
        Use => "use",
        /// Like `require`, with an SA of its own.
        Unique => "unique",
    }
}

config_names! {
    /// The protocol of one SA in a bundle (`sa_protocol`).
    pub enum SaProtocol {
        /// ESP (RFC 4303).
        Esp => "esp",
        /// AH (RFC 4302).
        Ah => "ah",
        /// IPComp (RFC 3173).
        Ipcomp => "ipcomp",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for e in EncAlgName::ALL {
            assert_eq!(EncAlgName::from_config_name(&e.to_string()), Some(*e));
        }
        for a in AuthAlgName::ALL {
            assert_eq!(AuthAlgName::from_config_name(a.config_name()), Some(*a));
        }
        for m in AuthMethod::ALL {
            assert_eq!(AuthMethod::from_config_name(&m.to_string()), Some(*m));
        }
        assert_eq!(EncAlgName::from_config_name("aes128"), None);
        assert_eq!(
            PolicyAction::from_config_name("bypass"),
            Some(PolicyAction::None)
        );
        assert_eq!(PolicyAction::None.to_string(), "none");
    }

    #[test]
    fn dh_numbers_follow_iana() {
        // RFC 7296 §3.3.2 and the IANA "Transform Type 4" registry.
        let expect = [
            ("modp768", 1),
            ("modp1024", 2),
            ("modp1536", 5),
            ("modp2048", 14),
            ("modp3072", 15),
            ("modp4096", 16),
            ("modp6144", 17),
            ("modp8192", 18),
            ("ecp256", 19),
            ("ecp384", 20),
            ("ecp521", 21),
            ("curve25519", 31),
        ];
        for (name, n) in expect {
            let g = DhGroupName::from_config_name(name).unwrap();
            assert_eq!(g.number(), n);
            assert_eq!(DhGroupName::from_number(n), Some(g));
        }
        assert_eq!(DhGroupName::from_number(13), None);
    }

    #[test]
    fn only_the_new_ciphers_are_aead() {
        let aead: Vec<_> = EncAlgName::ALL.iter().filter(|e| e.is_aead()).collect();
        assert_eq!(
            aead,
            [
                &EncAlgName::Aes128Gcm16,
                &EncAlgName::Aes256Gcm16,
                &EncAlgName::Chacha20Poly1305
            ]
        );
    }

    #[test]
    fn bare_hashes_map_to_hmac() {
        assert_eq!(AuthAlgName::Sha2_256.hmac(), AuthAlgName::HmacSha2_256);
        assert_eq!(AuthAlgName::AesXcbc.hmac(), AuthAlgName::AesXcbc);
    }
}
