//! GSS-API (MIT Kerberos' `libgssapi_krb5.so.2`) for Negotiate: a hand-declared FFI of the ten
//! functions an acceptor (and a test initiator) calls, and safe owners for what they hand back.
//!
//! Hand-declared rather than the `libgssapi` crate: that crate generates its bindings with bindgen
//! at build time (libclang, a C toolchain's headers), for some hundred declarations of which
//! ringgate uses ten; these ten have had the same C signatures since RFC 2744 (2000) and
//! `gss_acquire_cred_from` since MIT krb5 1.11 (2012).
//!
//! Ownership: every handle the library returns (credential, context, name, buffer) is owned by a
//! Rust value whose `Drop` releases it, so no path (an error, a panic, a connection closed midway)
//! leaks one. The library is thread-safe for distinct contexts and for a shared credential.

use std::ffi::{CString, c_char, c_int, c_void};
use std::path::Path;
use std::ptr;

type OmUint32 = u32;

#[repr(C)]
struct OidDesc {
    length: OmUint32,
    elements: *const c_void,
}

#[repr(C)]
struct OidSetDesc {
    count: usize,
    elements: *const OidDesc,
}

#[repr(C)]
struct BufferDesc {
    length: usize,
    value: *mut c_void,
}

#[repr(C)]
struct KeyValueElement {
    key: *const c_char,
    value: *const c_char,
}

#[repr(C)]
struct KeyValueSet {
    count: OmUint32,
    elements: *const KeyValueElement,
}

/// Opaque library objects.
#[repr(C)]
struct GssName {
    _private: [u8; 0],
}
#[repr(C)]
struct GssCred {
    _private: [u8; 0],
}
#[repr(C)]
struct GssCtx {
    _private: [u8; 0],
}

const GSS_C_ACCEPT: c_int = 2;
const GSS_C_GSS_CODE: c_int = 1;
const GSS_C_MECH_CODE: c_int = 2;
const GSS_C_MUTUAL_FLAG: OmUint32 = 2;
const GSS_C_REPLAY_FLAG: OmUint32 = 4;
const GSS_C_INDEFINITE: OmUint32 = 0xffff_ffff;
/// `GSS_S_CONTINUE_NEEDED`: a supplementary bit, not an error.
const GSS_S_CONTINUE_NEEDED: OmUint32 = 1;
/// The calling-error and routine-error fields (`GSS_ERROR()`).
const GSS_ERROR_MASK: OmUint32 = 0xffff_0000;

/// `GSS_C_ANON_FLAG`: the initiator is anonymous (a `WELLKNOWN/ANONYMOUS` ticket).
const GSS_C_ANON_FLAG: OmUint32 = 64;
/// Kerberos 5, 1.2.840.113554.1.2.2 (RFC 1964), and the OID older Windows sends for it,
/// 1.2.840.48018.1.2.2: the only mechanisms whose completion is accepted.
static KRB5_OIDS: [&[u8]; 2] = [
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02],
    &[0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02],
];

/// SPNEGO, 1.3.6.1.5.5.2 (RFC 4178).
static SPNEGO_OID_BYTES: [u8; 6] = [0x2b, 0x06, 0x01, 0x05, 0x05, 0x02];

// By its versioned file name: building needs only the run-time library (Debian's
// libgssapi-krb5-2, which curl already depends on), not the `-dev` package's unversioned link.
#[link(name = "libgssapi_krb5.so.2", kind = "dylib", modifiers = "+verbatim")]
unsafe extern "C" {
    static GSS_C_NT_HOSTBASED_SERVICE: *const OidDesc;
    static GSS_KRB5_NT_PRINCIPAL_NAME: *const OidDesc;

    fn gss_import_name(
        minor: *mut OmUint32,
        input: *const BufferDesc,
        name_type: *const OidDesc,
        output: *mut *mut GssName,
    ) -> OmUint32;
    fn gss_release_name(minor: *mut OmUint32, name: *mut *mut GssName) -> OmUint32;
    fn gss_display_name(
        minor: *mut OmUint32,
        name: *const GssName,
        output: *mut BufferDesc,
        name_type: *mut *const OidDesc,
    ) -> OmUint32;
    fn gss_acquire_cred_from(
        minor: *mut OmUint32,
        desired_name: *const GssName,
        time_req: OmUint32,
        desired_mechs: *const OidSetDesc,
        usage: c_int,
        cred_store: *const KeyValueSet,
        output_cred: *mut *mut GssCred,
        actual_mechs: *mut *mut OidSetDesc,
        time_rec: *mut OmUint32,
    ) -> OmUint32;
    fn gss_release_cred(minor: *mut OmUint32, cred: *mut *mut GssCred) -> OmUint32;
    fn gss_accept_sec_context(
        minor: *mut OmUint32,
        context: *mut *mut GssCtx,
        acceptor_cred: *const GssCred,
        input_token: *const BufferDesc,
        bindings: *const c_void,
        src_name: *mut *mut GssName,
        mech_type: *mut *const OidDesc,
        output_token: *mut BufferDesc,
        ret_flags: *mut OmUint32,
        time_rec: *mut OmUint32,
        delegated_cred: *mut *mut GssCred,
    ) -> OmUint32;
    fn gss_init_sec_context(
        minor: *mut OmUint32,
        initiator_cred: *const GssCred,
        context: *mut *mut GssCtx,
        target: *const GssName,
        mech_type: *const OidDesc,
        req_flags: OmUint32,
        time_req: OmUint32,
        bindings: *const c_void,
        input_token: *const BufferDesc,
        actual_mech: *mut *const OidDesc,
        output_token: *mut BufferDesc,
        ret_flags: *mut OmUint32,
        time_rec: *mut OmUint32,
    ) -> OmUint32;
    fn gss_delete_sec_context(
        minor: *mut OmUint32,
        context: *mut *mut GssCtx,
        output_token: *mut BufferDesc,
    ) -> OmUint32;
    fn gss_release_buffer(minor: *mut OmUint32, buffer: *mut BufferDesc) -> OmUint32;
    fn gss_display_status(
        minor: *mut OmUint32,
        status: OmUint32,
        status_type: c_int,
        mech_type: *const OidDesc,
        message_context: *mut OmUint32,
        status_string: *mut BufferDesc,
    ) -> OmUint32;
}

/// A failed GSS-API call: its major and minor status and the library's words for both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GssError {
    pub major: u32,
    pub minor: u32,
    pub message: String,
}

impl std::fmt::Display for GssError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (major {:#x}, minor {})",
            self.message, self.major, self.minor
        )
    }
}

impl std::error::Error for GssError {}

/// A buffer the library allocated, released on drop.
struct OwnedBuffer(BufferDesc);

impl OwnedBuffer {
    fn empty() -> OwnedBuffer {
        OwnedBuffer(BufferDesc {
            length: 0,
            value: ptr::null_mut(),
        })
    }

    fn bytes(&self) -> &[u8] {
        if self.0.value.is_null() || self.0.length == 0 {
            return &[];
        }
        // SAFETY: the library filled `value` with `length` initialised bytes it owns until
        // `gss_release_buffer`, which only our `Drop` calls, after this borrow ends.
        unsafe { std::slice::from_raw_parts(self.0.value as *const u8, self.0.length) }
    }
}

impl Drop for OwnedBuffer {
    fn drop(&mut self) {
        if !self.0.value.is_null() {
            let mut minor = 0;
            // SAFETY: the buffer was allocated by the library (or is empty) and released once.
            unsafe { gss_release_buffer(&mut minor, &mut self.0) };
        }
    }
}

/// An input buffer borrowing `bytes`.
fn input(bytes: &[u8]) -> BufferDesc {
    BufferDesc {
        length: bytes.len(),
        value: bytes.as_ptr() as *mut c_void,
    }
}

/// A name, released on drop.
struct Name(*mut GssName);

impl Name {
    /// `service` as a Kerberos principal (`HTTP/proxy.corp`, `HTTP/proxy.corp@REALM`) when it
    /// holds a `/`, else as a host-based service (`HTTP@proxy.corp`).
    fn import(service: &str) -> Result<Name, GssError> {
        let mut minor = 0;
        let mut name = ptr::null_mut();
        let buffer = input(service.as_bytes());
        // SAFETY: the OID statics are initialised data in the library; `buffer` borrows
        // `service` for the call, which copies it.
        let major = unsafe {
            let kind = if service.contains('/') {
                GSS_KRB5_NT_PRINCIPAL_NAME
            } else {
                GSS_C_NT_HOSTBASED_SERVICE
            };
            gss_import_name(&mut minor, &buffer, kind, &mut name)
        };
        check(major, minor)?;
        Ok(Name(name))
    }

    fn display(&self) -> Result<String, GssError> {
        let mut minor = 0;
        let mut out = OwnedBuffer::empty();
        // SAFETY: `self.0` is a live name; the output buffer is owned by `out`.
        let major = unsafe { gss_display_name(&mut minor, self.0, &mut out.0, ptr::null_mut()) };
        check(major, minor)?;
        Ok(String::from_utf8_lossy(out.bytes()).into_owned())
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        if !self.0.is_null() {
            let mut minor = 0;
            // SAFETY: a name the library returned, released once.
            unsafe { gss_release_name(&mut minor, &mut self.0) };
        }
    }
}

/// The library's text for a status code of one kind (the loop the API asks for).
fn status_text(code: u32, kind: c_int) -> String {
    let mut text = String::new();
    let mut context = 0;
    for _ in 0..8 {
        let mut minor = 0;
        let mut out = OwnedBuffer::empty();
        // SAFETY: the out buffer is owned by `out`; `context` carries the loop's state.
        let major = unsafe {
            gss_display_status(
                &mut minor,
                code,
                kind,
                ptr::null(),
                &mut context,
                &mut out.0,
            )
        };
        if major & GSS_ERROR_MASK != 0 {
            break;
        }
        if !text.is_empty() {
            text.push_str("; ");
        }
        text.push_str(&String::from_utf8_lossy(out.bytes()));
        if context == 0 {
            break;
        }
    }
    text
}

fn error(major: u32, minor: u32) -> GssError {
    let mut message = status_text(major, GSS_C_GSS_CODE);
    if minor != 0 {
        message.push_str(": ");
        message.push_str(&status_text(minor, GSS_C_MECH_CODE));
    }
    GssError {
        major,
        minor,
        message,
    }
}

fn check(major: u32, minor: u32) -> Result<(), GssError> {
    match major & GSS_ERROR_MASK {
        0 => Ok(()),
        _ => Err(error(major, minor)),
    }
}

/// The acceptor's credential: the keytab's keys (one service's, or any of them), shared by the
/// verifier threads.
pub struct Acceptor {
    cred: *mut GssCred,
}

// SAFETY: MIT's credential handles are internally locked and may be used from several threads at
// once (krb5 is built thread-safe on Linux); the handle is released only by `Drop`.
unsafe impl Send for Acceptor {}
// SAFETY: as above: concurrent `gss_accept_sec_context` calls may share one acceptor credential.
unsafe impl Sync for Acceptor {}

impl Acceptor {
    /// Acquires the accepting credential from `keytab` (or `KRB5_KTNAME`, or the system keytab)
    /// for `service` (or, when `None`, any key the keytab holds), with its replay cache `rcache`
    /// (a krb5 rcache name such as `file2:/var/lib/ringgate/rcache`; `None`: krb5's default).
    pub fn new(
        service: Option<&str>,
        keytab: Option<&Path>,
        rcache: Option<&str>,
    ) -> Result<Acceptor, GssError> {
        let name = service.map(Name::import).transpose()?;
        let bad = |what: &str| GssError {
            major: 0,
            minor: 0,
            message: format!("{what} holds a NUL byte"),
        };
        let keytab = keytab
            .map(|k| CString::new(k.as_os_str().as_encoded_bytes()).map_err(|_| bad("keytab")))
            .transpose()?;
        let rcache = rcache
            .map(|r| CString::new(r).map_err(|_| bad("rcache")))
            .transpose()?;
        let mut elements = Vec::new();
        if let Some(k) = &keytab {
            elements.push(KeyValueElement {
                key: c"keytab".as_ptr(),
                value: k.as_ptr(),
            });
        }
        if let Some(r) = &rcache {
            elements.push(KeyValueElement {
                key: c"rcache".as_ptr(),
                value: r.as_ptr(),
            });
        }
        let store = KeyValueSet {
            count: elements.len() as OmUint32,
            elements: elements.as_ptr(),
        };
        let mut minor = 0;
        let mut cred = ptr::null_mut();
        // SAFETY: every pointer passed borrows a value alive for the call (`name`, `store` and
        // the strings it points to); the library copies what it keeps. Null is the API's "none"
        // for the name, the mechanism set and the outputs we do not want.
        let major = unsafe {
            gss_acquire_cred_from(
                &mut minor,
                name.as_ref().map_or(ptr::null(), |n| n.0),
                GSS_C_INDEFINITE,
                ptr::null(),
                GSS_C_ACCEPT,
                if elements.is_empty() {
                    ptr::null()
                } else {
                    &store
                },
                &mut cred,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        check(major, minor)?;
        Ok(Acceptor { cred })
    }

    /// One leg: feeds the client's `token` to `context` (a new one when `None`).
    pub fn accept(&self, context: Option<Context>, token: &[u8]) -> Result<Step, GssError> {
        let mut context = context.unwrap_or(Context(ptr::null_mut()));
        let mut minor = 0;
        let mut src = Name(ptr::null_mut());
        let mut out = OwnedBuffer::empty();
        let mut mech: *const OidDesc = ptr::null();
        let mut flags: OmUint32 = 0;
        let token = input(token);
        // SAFETY: `context.0` is null or a live context this call may update; the credential is
        // live while `self` is; `token` borrows the caller's bytes for the call; the outputs are
        // owned by `src` and `out`, which release them.
        let major = unsafe {
            gss_accept_sec_context(
                &mut minor,
                &mut context.0,
                self.cred,
                &token,
                ptr::null(),
                &mut src.0,
                &mut mech,
                &mut out.0,
                &mut flags,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        // On failure `context` (if the library left one) is deleted by its drop.
        check(major, minor)?;
        let token = out.bytes().to_vec();
        if major & GSS_S_CONTINUE_NEEDED != 0 {
            return Ok(Step::Continue { context, token });
        }
        // SPNEGO would complete with any mechanism installed (gss-ntlmssp, say, which would skip
        // ringgate's own NTLM rules): only Kerberos counts, and never an anonymous ticket.
        if !is_krb5(mech) || flags & GSS_C_ANON_FLAG != 0 {
            return Err(GssError {
                major: 0,
                minor: 0,
                message: if flags & GSS_C_ANON_FLAG != 0 {
                    "anonymous initiator refused".into()
                } else {
                    "mechanism other than Kerberos refused".into()
                },
            });
        }
        Ok(Step::Complete {
            principal: src.display()?,
            token,
        })
    }
}

/// Whether `mech` (an OID the library returned, or null) is Kerberos 5.
fn is_krb5(mech: *const OidDesc) -> bool {
    if mech.is_null() {
        return false;
    }
    // SAFETY: a non-null mechanism OID returned by gss_accept_sec_context points to a static
    // descriptor of the library, whose `elements` holds `length` bytes.
    let bytes = unsafe {
        let oid = &*mech;
        if oid.elements.is_null() {
            return false;
        }
        std::slice::from_raw_parts(oid.elements as *const u8, oid.length as usize)
    };
    KRB5_OIDS.contains(&bytes)
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        let mut minor = 0;
        // SAFETY: the credential the library returned, released once.
        unsafe { gss_release_cred(&mut minor, &mut self.cred) };
    }
}

/// A security context between its legs; deleted on drop.
pub struct Context(*mut GssCtx);

// SAFETY: a context is used by one thread at a time (it moves between a connection and the
// verifier thread running its next leg); MIT's contexts hold no thread-bound state.
unsafe impl Send for Context {}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Context")
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        if !self.0.is_null() {
            let mut minor = 0;
            // SAFETY: a context the library created, deleted once; no output token is wanted.
            unsafe { gss_delete_sec_context(&mut minor, &mut self.0, ptr::null_mut()) };
        }
    }
}

/// What one accepted leg came to.
#[derive(Debug)]
pub enum Step {
    /// Authenticated as `principal`; `token` (may be empty) goes back to the client (mutual
    /// authentication).
    Complete { principal: String, token: Vec<u8> },
    /// Another leg is needed: `token` goes to the client in a 407.
    Continue { context: Context, token: Vec<u8> },
}

/// The first SPNEGO token of a client with the default credential cache (`KRB5CCNAME`) for the
/// host-based `service` (`HTTP@proxy.corp`), asking for mutual authentication, as curl
/// `--proxy-negotiate` does. For tests and the load generator.
pub fn initiate(service: &str) -> Result<Vec<u8>, GssError> {
    let target = Name::import(service)?;
    let mut context = Context(ptr::null_mut());
    let mut minor = 0;
    let mut out = OwnedBuffer::empty();
    let spnego = OidDesc {
        length: SPNEGO_OID_BYTES.len() as OmUint32,
        elements: SPNEGO_OID_BYTES.as_ptr() as *const c_void,
    };
    // SAFETY: the target name and the mechanism OID live for the call; the context and the
    // output are owned by `context` and `out`, which release them.
    let major = unsafe {
        gss_init_sec_context(
            &mut minor,
            ptr::null(),
            &mut context.0,
            target.0,
            &spnego,
            GSS_C_MUTUAL_FLAG | GSS_C_REPLAY_FLAG,
            0,
            ptr::null(),
            ptr::null(),
            ptr::null_mut(),
            &mut out.0,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    check(major, minor)?;
    Ok(out.bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_garbage_token_is_an_error_with_words_not_a_crash() {
        // No keytab is needed to refuse garbage: acquire the default acceptor lazily fails or
        // the token is refused; either way an error naming its status, never a panic.
        let dir = std::env::temp_dir().join(format!("rg-gss-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let keytab = dir.join("none.keytab");
        match Acceptor::new(None, Some(&keytab), None) {
            Err(e) => assert!(!e.message.is_empty(), "{e:?}"),
            Ok(a) => {
                for token in [&b""[..], b"\x60\x00", b"garbage", &[0xff; 300]] {
                    let e = a.accept(None, token).unwrap_err();
                    assert_ne!(e.major, 0, "{e}");
                    assert!(!e.message.is_empty());
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
