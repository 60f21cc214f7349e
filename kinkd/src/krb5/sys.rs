//! Raw declarations of the MIT libkrb5 functions and structures kinkd uses.
//!
//! Hand-written from `<krb5/krb5.h>` (MIT krb5 1.20, the C ABI of
//! `libkrb5.so.3`, stable since 1.0) instead of generated with bindgen,
//! which would need libclang on every build machine. Only the public API is
//! declared: no MIT internals (racoon2 needed some; modern MIT has public
//! replacements). The structure layouts are checked against the C compiler's
//! by the tests at the end of this file (offsets measured with gcc on
//! x86_64 Debian 12).
//!
//! Everything here is `unsafe` to call; [`super::ffi`] wraps each call in a
//! safe function or an owning handle. Nothing outside `kinkd::krb5` sees
//! these items.
#![allow(unsafe_code)]
// The C names are kept (krb5_data, not Krb5Data) so a reader can grep the
// MIT headers for every item declared here.
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_long, c_uint, c_void};

/// `krb5_error_code`: 0 or a com_err code (see [`ERROR_TABLE_BASE_KRB5`]).
pub(crate) type krb5_error_code = i32;
/// `krb5_enctype`.
pub(crate) type krb5_enctype = i32;
/// `krb5_cksumtype`.
pub(crate) type krb5_cksumtype = i32;
/// `krb5_keyusage`.
pub(crate) type krb5_keyusage = i32;
/// `krb5_flags`.
pub(crate) type krb5_flags = i32;
/// `krb5_timestamp`: seconds since the epoch, signed 32 bits.
pub(crate) type krb5_timestamp = i32;
/// `krb5_boolean`.
pub(crate) type krb5_boolean = c_uint;
/// `krb5_magic`.
pub(crate) type krb5_magic = i32;

/// Opaque `krb5_context` (`struct _krb5_context *`).
pub(crate) type krb5_context = *mut c_void;
/// Opaque `krb5_principal` (`struct krb5_principal_data *`).
pub(crate) type krb5_principal = *mut c_void;
/// Opaque `krb5_keytab`.
pub(crate) type krb5_keytab = *mut c_void;
/// Opaque `krb5_ccache`.
pub(crate) type krb5_ccache = *mut c_void;
/// Opaque `krb5_auth_context`.
pub(crate) type krb5_auth_context = *mut c_void;
/// Opaque `krb5_get_init_creds_opt *` (only ever allocated by the library).
pub(crate) type krb5_get_init_creds_opt = c_void;
/// Opaque `profile_t`.
pub(crate) type profile_t = *mut c_void;

/// `krb5_data`: a counted byte string.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct krb5_data {
    pub(crate) magic: krb5_magic,
    pub(crate) length: c_uint,
    pub(crate) data: *mut c_char,
}

impl krb5_data {
    /// An empty `krb5_data` (what the library expects for outputs it fills).
    pub(crate) const fn empty() -> Self {
        Self {
            magic: 0,
            length: 0,
            data: std::ptr::null_mut(),
        }
    }
}

/// `krb5_keyblock`.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct krb5_keyblock {
    pub(crate) magic: krb5_magic,
    pub(crate) enctype: krb5_enctype,
    pub(crate) length: c_uint,
    pub(crate) contents: *mut u8,
}

/// `krb5_checksum`.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct krb5_checksum {
    pub(crate) magic: krb5_magic,
    pub(crate) checksum_type: krb5_cksumtype,
    pub(crate) length: c_uint,
    pub(crate) contents: *mut u8,
}

/// `krb5_enc_data`.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct krb5_enc_data {
    pub(crate) magic: krb5_magic,
    pub(crate) enctype: krb5_enctype,
    pub(crate) kvno: c_uint,
    pub(crate) ciphertext: krb5_data,
}

/// `krb5_ticket_times`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct krb5_ticket_times {
    pub(crate) authtime: krb5_timestamp,
    pub(crate) starttime: krb5_timestamp,
    pub(crate) endtime: krb5_timestamp,
    pub(crate) renew_till: krb5_timestamp,
}

/// `krb5_cc_cursor`: an opaque iteration state.
pub(crate) type krb5_cc_cursor = *mut c_void;

/// `krb5_creds`.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct krb5_creds {
    pub(crate) magic: krb5_magic,
    pub(crate) client: krb5_principal,
    pub(crate) server: krb5_principal,
    pub(crate) keyblock: krb5_keyblock,
    pub(crate) times: krb5_ticket_times,
    pub(crate) is_skey: krb5_boolean,
    pub(crate) ticket_flags: krb5_flags,
    pub(crate) addresses: *mut *mut c_void,
    pub(crate) ticket: krb5_data,
    pub(crate) second_ticket: krb5_data,
    pub(crate) authdata: *mut *mut c_void,
}

impl krb5_creds {
    /// An all-zero `krb5_creds`, as the library expects for `in_creds`.
    pub(crate) const fn zeroed() -> Self {
        Self {
            magic: 0,
            client: std::ptr::null_mut(),
            server: std::ptr::null_mut(),
            keyblock: krb5_keyblock {
                magic: 0,
                enctype: 0,
                length: 0,
                contents: std::ptr::null_mut(),
            },
            times: krb5_ticket_times {
                authtime: 0,
                starttime: 0,
                endtime: 0,
                renew_till: 0,
            },
            is_skey: 0,
            ticket_flags: 0,
            addresses: std::ptr::null_mut(),
            ticket: krb5_data::empty(),
            second_ticket: krb5_data::empty(),
            authdata: std::ptr::null_mut(),
        }
    }
}

/// `krb5_transited` (only as a field of [`krb5_enc_tkt_part`]).
#[repr(C)]
#[derive(Debug)]
pub(crate) struct krb5_transited {
    pub(crate) magic: krb5_magic,
    pub(crate) tr_type: u8,
    pub(crate) tr_contents: krb5_data,
}

/// `krb5_enc_tkt_part`: the decrypted part of a ticket.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct krb5_enc_tkt_part {
    pub(crate) magic: krb5_magic,
    pub(crate) flags: krb5_flags,
    pub(crate) session: *mut krb5_keyblock,
    pub(crate) client: krb5_principal,
    pub(crate) transited: krb5_transited,
    pub(crate) times: krb5_ticket_times,
    pub(crate) caddrs: *mut *mut c_void,
    pub(crate) authorization_data: *mut *mut c_void,
}

/// `krb5_ticket`.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct krb5_ticket {
    pub(crate) magic: krb5_magic,
    pub(crate) server: krb5_principal,
    pub(crate) enc_part: krb5_enc_data,
    pub(crate) enc_part2: *mut krb5_enc_tkt_part,
}

/// `krb5_authenticator`.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct krb5_authenticator {
    pub(crate) magic: krb5_magic,
    pub(crate) client: krb5_principal,
    pub(crate) checksum: *mut krb5_checksum,
    pub(crate) cusec: i32,
    pub(crate) ctime: krb5_timestamp,
    pub(crate) subkey: *mut krb5_keyblock,
    pub(crate) seq_number: u32,
    pub(crate) authorization_data: *mut *mut c_void,
}

/// `krb5_error`: a decoded KRB-ERROR (RFC 4120 §5.9.1).
#[repr(C)]
#[derive(Debug)]
pub(crate) struct krb5_error {
    pub(crate) magic: krb5_magic,
    pub(crate) ctime: krb5_timestamp,
    pub(crate) cusec: i32,
    pub(crate) susec: i32,
    pub(crate) stime: krb5_timestamp,
    pub(crate) error: u32,
    pub(crate) client: krb5_principal,
    pub(crate) server: krb5_principal,
    pub(crate) text: krb5_data,
    pub(crate) e_data: krb5_data,
}

/// `krb5_ap_rep_enc_part`.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct krb5_ap_rep_enc_part {
    pub(crate) magic: krb5_magic,
    pub(crate) ctime: krb5_timestamp,
    pub(crate) cusec: i32,
    pub(crate) subkey: *mut krb5_keyblock,
    pub(crate) seq_number: u32,
}

/// `AP_OPTS_USE_SESSION_KEY`: the ticket is encrypted in the server's TGT
/// session key (user-to-user).
pub(crate) const AP_OPTS_USE_SESSION_KEY: krb5_flags = 0x4000_0000;
/// `AP_OPTS_MUTUAL_REQUIRED`: the server must answer with an AP-REP.
pub(crate) const AP_OPTS_MUTUAL_REQUIRED: krb5_flags = 0x2000_0000;
/// `AP_OPTS_USE_SUBKEY`: put a fresh subkey into the authenticator.
pub(crate) const AP_OPTS_USE_SUBKEY: krb5_flags = 0x0000_0001;
/// `KRB5_GC_USER_USER`: ask the KDC for a user-to-user ticket
/// (ENC-TKT-IN-SKEY with `second_ticket`).
pub(crate) const KRB5_GC_USER_USER: krb5_flags = 1;
/// `KRB5_GC_CACHED`: never contact the KDC.
pub(crate) const KRB5_GC_CACHED: krb5_flags = 2;
/// `ERROR_TABLE_BASE_krb5`: com_err codes of protocol errors are this plus
/// the RFC 4120 error number.
pub(crate) const ERROR_TABLE_BASE_KRB5: krb5_error_code = -1_765_328_384;
/// `KRB5KRB_AP_ERR_SKEW`: clock skew too great.
pub(crate) const KRB5KRB_AP_ERR_SKEW: krb5_error_code = ERROR_TABLE_BASE_KRB5 + 37;
/// `KRB5KRB_AP_ERR_REPEAT`: request is a replay.
pub(crate) const KRB5KRB_AP_ERR_REPEAT: krb5_error_code = ERROR_TABLE_BASE_KRB5 + 34;
/// `KRB5_KT_NOTFOUND`: no matching keytab entry.
pub(crate) const KRB5_KT_NOTFOUND: krb5_error_code = -1_765_328_203;
/// `KRB5_KT_KVNONOTFOUND`: keytab has the principal, not that key version.
pub(crate) const KRB5_KT_KVNONOTFOUND: krb5_error_code = -1_765_328_154;
/// `KRB5_RC_REPLAY`: the replay cache saw this authenticator.
pub(crate) const KRB5_RC_REPLAY: krb5_error_code = -1_765_328_221;

// Linked by build.rs (`pkg-config --libs krb5`: libkrb5, libk5crypto for
// the `krb5_c_*` functions, libcom_err).
unsafe extern "C" {
    // Contexts and messages.
    pub(crate) fn krb5_init_context(context: *mut krb5_context) -> krb5_error_code;
    pub(crate) fn krb5_init_context_profile(
        profile: profile_t,
        flags: krb5_flags,
        context: *mut krb5_context,
    ) -> krb5_error_code;
    pub(crate) fn krb5_free_context(context: krb5_context);
    pub(crate) fn krb5_get_error_message(
        context: krb5_context,
        code: krb5_error_code,
    ) -> *const c_char;
    pub(crate) fn krb5_free_error_message(context: krb5_context, msg: *const c_char);
    pub(crate) fn profile_init_path(filepath: *const c_char, profile: *mut profile_t) -> c_long;
    pub(crate) fn profile_release(profile: profile_t);
    pub(crate) fn krb5_enctype_to_name(
        enctype: krb5_enctype,
        shortest: krb5_boolean,
        buffer: *mut c_char,
        buflen: usize,
    ) -> krb5_error_code;

    // Time.
    pub(crate) fn krb5_us_timeofday(
        context: krb5_context,
        seconds: *mut krb5_timestamp,
        microseconds: *mut i32,
    ) -> krb5_error_code;
    pub(crate) fn krb5_set_real_time(
        context: krb5_context,
        seconds: krb5_timestamp,
        microseconds: i32,
    ) -> krb5_error_code;

    // Principals.
    pub(crate) fn krb5_parse_name(
        context: krb5_context,
        name: *const c_char,
        principal: *mut krb5_principal,
    ) -> krb5_error_code;
    pub(crate) fn krb5_unparse_name(
        context: krb5_context,
        principal: krb5_principal,
        name: *mut *mut c_char,
    ) -> krb5_error_code;
    pub(crate) fn krb5_free_unparsed_name(context: krb5_context, name: *mut c_char);
    pub(crate) fn krb5_free_principal(context: krb5_context, principal: krb5_principal);

    // Keytabs and credential caches.
    pub(crate) fn krb5_kt_resolve(
        context: krb5_context,
        name: *const c_char,
        keytab: *mut krb5_keytab,
    ) -> krb5_error_code;
    pub(crate) fn krb5_kt_default(
        context: krb5_context,
        keytab: *mut krb5_keytab,
    ) -> krb5_error_code;
    pub(crate) fn krb5_kt_close(context: krb5_context, keytab: krb5_keytab) -> krb5_error_code;
    pub(crate) fn krb5_cc_new_unique(
        context: krb5_context,
        cc_type: *const c_char,
        hint: *const c_char,
        ccache: *mut krb5_ccache,
    ) -> krb5_error_code;
    pub(crate) fn krb5_cc_resolve(
        context: krb5_context,
        name: *const c_char,
        ccache: *mut krb5_ccache,
    ) -> krb5_error_code;
    pub(crate) fn krb5_cc_default(
        context: krb5_context,
        ccache: *mut krb5_ccache,
    ) -> krb5_error_code;
    pub(crate) fn krb5_cc_initialize(
        context: krb5_context,
        ccache: krb5_ccache,
        principal: krb5_principal,
    ) -> krb5_error_code;
    pub(crate) fn krb5_cc_store_cred(
        context: krb5_context,
        ccache: krb5_ccache,
        creds: *mut krb5_creds,
    ) -> krb5_error_code;
    pub(crate) fn krb5_cc_start_seq_get(
        context: krb5_context,
        ccache: krb5_ccache,
        cursor: *mut krb5_cc_cursor,
    ) -> krb5_error_code;
    pub(crate) fn krb5_cc_next_cred(
        context: krb5_context,
        ccache: krb5_ccache,
        cursor: *mut krb5_cc_cursor,
        creds: *mut krb5_creds,
    ) -> krb5_error_code;
    pub(crate) fn krb5_cc_end_seq_get(
        context: krb5_context,
        ccache: krb5_ccache,
        cursor: *mut krb5_cc_cursor,
    ) -> krb5_error_code;
    pub(crate) fn krb5_cc_destroy(context: krb5_context, ccache: krb5_ccache) -> krb5_error_code;
    pub(crate) fn krb5_cc_close(context: krb5_context, ccache: krb5_ccache) -> krb5_error_code;

    // Obtaining tickets (these talk to the KDC and block).
    pub(crate) fn krb5_get_init_creds_opt_alloc(
        context: krb5_context,
        opt: *mut *mut krb5_get_init_creds_opt,
    ) -> krb5_error_code;
    pub(crate) fn krb5_get_init_creds_opt_free(
        context: krb5_context,
        opt: *mut krb5_get_init_creds_opt,
    );
    pub(crate) fn krb5_get_init_creds_keytab(
        context: krb5_context,
        creds: *mut krb5_creds,
        client: krb5_principal,
        keytab: krb5_keytab,
        start_time: i32,
        in_tkt_service: *const c_char,
        options: *mut krb5_get_init_creds_opt,
    ) -> krb5_error_code;
    pub(crate) fn krb5_get_credentials(
        context: krb5_context,
        options: krb5_flags,
        ccache: krb5_ccache,
        in_creds: *mut krb5_creds,
        out_creds: *mut *mut krb5_creds,
    ) -> krb5_error_code;
    pub(crate) fn krb5_free_creds(context: krb5_context, creds: *mut krb5_creds);
    pub(crate) fn krb5_free_cred_contents(context: krb5_context, creds: *mut krb5_creds);

    // AP exchange.
    pub(crate) fn krb5_auth_con_init(
        context: krb5_context,
        auth_context: *mut krb5_auth_context,
    ) -> krb5_error_code;
    pub(crate) fn krb5_auth_con_free(
        context: krb5_context,
        auth_context: krb5_auth_context,
    ) -> krb5_error_code;
    pub(crate) fn krb5_auth_con_getkey(
        context: krb5_context,
        auth_context: krb5_auth_context,
        keyblock: *mut *mut krb5_keyblock,
    ) -> krb5_error_code;
    pub(crate) fn krb5_auth_con_getsendsubkey(
        context: krb5_context,
        auth_context: krb5_auth_context,
        keyblock: *mut *mut krb5_keyblock,
    ) -> krb5_error_code;
    pub(crate) fn krb5_auth_con_getrecvsubkey(
        context: krb5_context,
        auth_context: krb5_auth_context,
        keyblock: *mut *mut krb5_keyblock,
    ) -> krb5_error_code;
    pub(crate) fn krb5_auth_con_setuseruserkey(
        context: krb5_context,
        auth_context: krb5_auth_context,
        keyblock: *mut krb5_keyblock,
    ) -> krb5_error_code;
    pub(crate) fn krb5_auth_con_getauthenticator(
        context: krb5_context,
        auth_context: krb5_auth_context,
        authenticator: *mut *mut krb5_authenticator,
    ) -> krb5_error_code;
    pub(crate) fn krb5_free_authenticator(
        context: krb5_context,
        authenticator: *mut krb5_authenticator,
    );
    pub(crate) fn krb5_mk_req_extended(
        context: krb5_context,
        auth_context: *mut krb5_auth_context,
        ap_req_options: krb5_flags,
        in_data: *mut krb5_data,
        in_creds: *mut krb5_creds,
        outbuf: *mut krb5_data,
    ) -> krb5_error_code;
    pub(crate) fn krb5_rd_req(
        context: krb5_context,
        auth_context: *mut krb5_auth_context,
        inbuf: *const krb5_data,
        server: krb5_principal,
        keytab: krb5_keytab,
        ap_req_options: *mut krb5_flags,
        ticket: *mut *mut krb5_ticket,
    ) -> krb5_error_code;
    pub(crate) fn krb5_free_ticket(context: krb5_context, ticket: *mut krb5_ticket);
    pub(crate) fn krb5_mk_rep(
        context: krb5_context,
        auth_context: krb5_auth_context,
        outbuf: *mut krb5_data,
    ) -> krb5_error_code;
    pub(crate) fn krb5_rd_rep(
        context: krb5_context,
        auth_context: krb5_auth_context,
        inbuf: *const krb5_data,
        repl: *mut *mut krb5_ap_rep_enc_part,
    ) -> krb5_error_code;
    pub(crate) fn krb5_free_ap_rep_enc_part(context: krb5_context, val: *mut krb5_ap_rep_enc_part);
    pub(crate) fn krb5_mk_error(
        context: krb5_context,
        dec_err: *const krb5_error,
        enc_err: *mut krb5_data,
    ) -> krb5_error_code;
    pub(crate) fn krb5_rd_error(
        context: krb5_context,
        enc_errbuf: *const krb5_data,
        dec_error: *mut *mut krb5_error,
    ) -> krb5_error_code;
    pub(crate) fn krb5_free_error(context: krb5_context, val: *mut krb5_error);
    pub(crate) fn krb5_free_keyblock(context: krb5_context, val: *mut krb5_keyblock);
    pub(crate) fn krb5_free_data_contents(context: krb5_context, val: *mut krb5_data);

    // RFC 3961 crypto with a caller-supplied key and key usage.
    pub(crate) fn krb5_c_make_checksum(
        context: krb5_context,
        cksumtype: krb5_cksumtype,
        key: *const krb5_keyblock,
        usage: krb5_keyusage,
        input: *const krb5_data,
        cksum: *mut krb5_checksum,
    ) -> krb5_error_code;
    pub(crate) fn krb5_c_verify_checksum(
        context: krb5_context,
        key: *const krb5_keyblock,
        usage: krb5_keyusage,
        data: *const krb5_data,
        cksum: *const krb5_checksum,
        valid: *mut krb5_boolean,
    ) -> krb5_error_code;
    pub(crate) fn krb5_free_checksum_contents(context: krb5_context, val: *mut krb5_checksum);
    pub(crate) fn krb5_c_encrypt_length(
        context: krb5_context,
        enctype: krb5_enctype,
        inputlen: usize,
        length: *mut usize,
    ) -> krb5_error_code;
    pub(crate) fn krb5_c_encrypt(
        context: krb5_context,
        key: *const krb5_keyblock,
        usage: krb5_keyusage,
        cipher_state: *const krb5_data,
        input: *const krb5_data,
        output: *mut krb5_enc_data,
    ) -> krb5_error_code;
    pub(crate) fn krb5_c_decrypt(
        context: krb5_context,
        key: *const krb5_keyblock,
        usage: krb5_keyusage,
        cipher_state: *const krb5_data,
        input: *const krb5_enc_data,
        output: *mut krb5_data,
    ) -> krb5_error_code;
    pub(crate) fn krb5_c_prf_length(
        context: krb5_context,
        enctype: krb5_enctype,
        len: *mut usize,
    ) -> krb5_error_code;
    pub(crate) fn krb5_c_prf(
        context: krb5_context,
        keyblock: *const krb5_keyblock,
        input: *mut krb5_data,
        output: *mut krb5_data,
    ) -> krb5_error_code;
}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;

    /// Sizes and offsets printed by gcc for `<krb5/krb5.h>` of MIT krb5 1.20
    /// on x86_64 (a C program with `sizeof`/`offsetof`); a mismatch means
    /// the declarations above no longer describe the library's ABI.
    #[test]
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    fn layouts_match_the_c_headers() {
        assert_eq!(size_of::<krb5_data>(), 16);
        assert_eq!(offset_of!(krb5_data, length), 4);
        assert_eq!(offset_of!(krb5_data, data), 8);
        assert_eq!(size_of::<krb5_keyblock>(), 24);
        assert_eq!(offset_of!(krb5_keyblock, enctype), 4);
        assert_eq!(offset_of!(krb5_keyblock, length), 8);
        assert_eq!(offset_of!(krb5_keyblock, contents), 16);
        assert_eq!(size_of::<krb5_checksum>(), 24);
        assert_eq!(offset_of!(krb5_checksum, checksum_type), 4);
        assert_eq!(offset_of!(krb5_checksum, contents), 16);
        assert_eq!(size_of::<krb5_enc_data>(), 32);
        assert_eq!(offset_of!(krb5_enc_data, kvno), 8);
        assert_eq!(offset_of!(krb5_enc_data, ciphertext), 16);
        assert_eq!(size_of::<krb5_ticket_times>(), 16);
        assert_eq!(size_of::<krb5_creds>(), 120);
        assert_eq!(offset_of!(krb5_creds, client), 8);
        assert_eq!(offset_of!(krb5_creds, server), 16);
        assert_eq!(offset_of!(krb5_creds, keyblock), 24);
        assert_eq!(offset_of!(krb5_creds, times), 48);
        assert_eq!(offset_of!(krb5_creds, is_skey), 64);
        assert_eq!(offset_of!(krb5_creds, ticket_flags), 68);
        assert_eq!(offset_of!(krb5_creds, addresses), 72);
        assert_eq!(offset_of!(krb5_creds, ticket), 80);
        assert_eq!(offset_of!(krb5_creds, second_ticket), 96);
        assert_eq!(offset_of!(krb5_creds, authdata), 112);
        assert_eq!(size_of::<krb5_ticket>(), 56);
        assert_eq!(offset_of!(krb5_ticket, enc_part), 16);
        assert_eq!(offset_of!(krb5_ticket, enc_part2), 48);
        assert_eq!(size_of::<krb5_transited>(), 24);
        assert_eq!(size_of::<krb5_enc_tkt_part>(), 80);
        assert_eq!(offset_of!(krb5_enc_tkt_part, session), 8);
        assert_eq!(offset_of!(krb5_enc_tkt_part, client), 16);
        assert_eq!(offset_of!(krb5_enc_tkt_part, transited), 24);
        assert_eq!(offset_of!(krb5_enc_tkt_part, times), 48);
        assert_eq!(offset_of!(krb5_enc_tkt_part, caddrs), 64);
        assert_eq!(offset_of!(krb5_enc_tkt_part, authorization_data), 72);
        assert_eq!(size_of::<krb5_authenticator>(), 56);
        assert_eq!(offset_of!(krb5_authenticator, checksum), 16);
        assert_eq!(offset_of!(krb5_authenticator, cusec), 24);
        assert_eq!(offset_of!(krb5_authenticator, ctime), 28);
        assert_eq!(offset_of!(krb5_authenticator, subkey), 32);
        assert_eq!(offset_of!(krb5_authenticator, seq_number), 40);
        assert_eq!(offset_of!(krb5_authenticator, authorization_data), 48);
        assert_eq!(size_of::<krb5_error>(), 72);
        assert_eq!(offset_of!(krb5_error, ctime), 4);
        assert_eq!(offset_of!(krb5_error, cusec), 8);
        assert_eq!(offset_of!(krb5_error, susec), 12);
        assert_eq!(offset_of!(krb5_error, stime), 16);
        assert_eq!(offset_of!(krb5_error, error), 20);
        assert_eq!(offset_of!(krb5_error, client), 24);
        assert_eq!(offset_of!(krb5_error, server), 32);
        assert_eq!(offset_of!(krb5_error, text), 40);
        assert_eq!(offset_of!(krb5_error, e_data), 56);
        assert_eq!(size_of::<krb5_ap_rep_enc_part>(), 32);
        assert_eq!(offset_of!(krb5_ap_rep_enc_part, ctime), 4);
        assert_eq!(offset_of!(krb5_ap_rep_enc_part, cusec), 8);
        assert_eq!(offset_of!(krb5_ap_rep_enc_part, subkey), 16);
        assert_eq!(offset_of!(krb5_ap_rep_enc_part, seq_number), 24);
    }
}
