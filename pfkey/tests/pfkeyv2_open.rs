//! `PfKeyKernel::open` on the host it runs on: where the kernel has no
//! AF_KEY sockets (no `af_key` module, as on the development machines),
//! it must refuse with `KernelError::Unsupported` and a sentence an
//! operator can act on, not panic or fail vaguely. Where the kernel has
//! AF_KEY, it must open and say so.
//!
//! Which case applies is decided independently, by creating a PF_KEY
//! socket directly.

use pfkey::pfkeyv2::PfKeyKernel;
use pfkey::{Kernel, KernelError};
use socket2::{Domain, Protocol, Socket, Type};

/// What `socket(PF_KEY, SOCK_RAW, PF_KEY_V2)` says here.
fn probe() -> std::io::Result<Socket> {
    Socket::new(
        Domain::from(libc::PF_KEY),
        Type::RAW,
        Some(Protocol::from(2)),
    )
}

#[tokio::test]
async fn open_says_plainly_whether_this_kernel_has_pf_key() {
    let result = PfKeyKernel::open().await;
    match probe() {
        Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
            let Err(err) = result else {
                panic!("opened PF_KEY on a kernel without AF_KEY");
            };
            let KernelError::Unsupported { backend, what } = &err else {
                panic!("expected Unsupported, got {err:?}");
            };
            assert_eq!(*backend, "pfkey");
            assert_eq!(
                what,
                "this kernel has no PF_KEY (AF_KEY) socket support: load the af_key module \
                 or use --kernel xfrm"
            );
            assert_eq!(
                err.to_string(),
                format!("backend pfkey cannot do this: {what}")
            );
        }
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            let Err(err) = result else {
                panic!("opened PF_KEY without CAP_NET_ADMIN");
            };
            assert!(err.to_string().contains("CAP_NET_ADMIN"), "{err}");
        }
        Err(e) => panic!("unexpected PF_KEY probe error: {e}"),
        Ok(_) => {
            let kernel = result.expect("AF_KEY exists, so open must succeed");
            assert_eq!(kernel.name(), "pfkey");
            assert!(kernel.carries_traffic());
            assert!(kernel.take_events().is_some());
        }
    }
}
