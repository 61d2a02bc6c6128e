//! [`Kernel`] against the kernel of the current namespace, read-only.

use super::*;
use crate::net::netlink::captures::{ETH0_MAC, VIP4};

#[test]
fn kernel_skips_stale_replies() {
    // Unprivileged and read-only: looks up the loopback interface of the current
    // namespace (always index 1) and sends nothing on any network.
    let mut k = Kernel::open_without_announce().unwrap();
    // A request whose reply nobody reads: an ENODEV error that waits in the socket
    // ahead of the next reply. Taking it for the next reply would report "no lo".
    let stale = k.next_seq();
    link_request(&mut k.req, stale, "nosuch-vipd0").unwrap();
    k.nl.send_to_kernel(&k.req).unwrap();
    let lo = k.link("lo").unwrap().expect("every namespace has lo");
    assert_eq!(lo.index, 1);
    assert_eq!(lo.mac, [0; 6], "loopback's hardware address is all zero");
    assert_eq!(k.link("nosuch-vipd0").unwrap(), None);
    // No announcements from an interface without a hardware address, nor without
    // the AF_PACKET socket.
    let vip = Vip {
        addr: VIP4,
        prefix_len: 24,
    };
    let err = k.announce(&lo, vip, AnnounceMode::Request).unwrap_err();
    assert_eq!(err.errno, libc::EOPNOTSUPP);
    let with_mac = LinkInfo {
        mac: ETH0_MAC,
        ..lo
    };
    let err = k
        .announce(&with_mac, vip, AnnounceMode::Request)
        .unwrap_err();
    assert_eq!(err.errno, libc::EBADF);
}
