//! Least privilege: once the sockets are open and the configuration is read, vipd
//! keeps only `CAP_NET_ADMIN` (add and delete addresses) and `CAP_NET_RAW` (send
//! announcements) and sets `no_new_privs`.
//!
//! [`drop_to_net_admin_and_raw`] clears the ambient set, drops every other capability
//! from the bounding set (`prctl(PR_CAPBSET_DROP)`), sets the effective and permitted
//! sets to those two (`capset(2)`; inheritable empty) and sets `no_new_privs`
//! (`prctl(PR_SET_NO_NEW_PRIVS)`). Run as root, `/proc/PID/status` then shows
//! `CapEff`, `CapPrm` and `CapBnd` all `0000000000003000` and `NoNewPrivs: 1`.
//!
//! Run as an unprivileged user with the two file capabilities (`setcap
//! cap_net_admin,cap_net_raw=ep vipd`), the process has no `CAP_SETPCAP`, so the
//! bounding set cannot be narrowed; that is harmless, since `no_new_privs` already
//! stops any later `execve` from gaining capabilities (and vipd never executes
//! anything). [`Dropped::bounding`] says which case happened.

use std::io;

/// `CAP_NET_ADMIN`: add and delete addresses through rtnetlink.
pub const CAP_NET_ADMIN: u32 = 12;
/// `CAP_NET_RAW`: send gratuitous ARP and unsolicited NA on a packet socket.
pub const CAP_NET_RAW: u32 = 13;
/// `CAP_SETPCAP`: needed to drop capabilities from the bounding set.
const CAP_SETPCAP: u32 = 8;
/// The capabilities kept, as a mask: `0x3000`.
pub const KEEP: u64 = (1 << CAP_NET_ADMIN) | (1 << CAP_NET_RAW);

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets in two 32-bit words.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`; version 3 takes two of them (low, high word).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The three capability sets of this thread, as 64-bit masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapSets {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

/// What [`drop_to_net_admin_and_raw`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// The effective and permitted sets now: `KEEP` or less (a capability that was
    /// not permitted at start cannot be gained).
    pub kept: u64,
    /// Whether the bounding set was narrowed to `KEEP`: false when the process had no
    /// `CAP_SETPCAP` (an unprivileged user with file capabilities).
    pub bounding: bool,
}

fn join(low: u32, high: u32) -> u64 {
    u64::from(low) | (u64::from(high) << 32)
}

/// The calling thread's capability sets (`capget(2)`).
pub fn current() -> io::Result<CapSets> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget(2) reads the header and writes two cap data structs for
    // version 3; both are live, properly laid out (#[repr(C)]) locals.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(CapSets {
        effective: join(data[0].effective, data[1].effective),
        permitted: join(data[0].permitted, data[1].permitted),
        inheritable: join(data[0].inheritable, data[1].inheritable),
    })
}

/// Set the calling thread's capability sets (`capset(2)`).
fn set(sets: CapSets) -> io::Result<()> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let word = |m: u64, high: bool| (if high { m >> 32 } else { m }) as u32;
    let data = [false, true].map(|high| CapData {
        effective: word(sets.effective, high),
        permitted: word(sets.permitted, high),
        inheritable: word(sets.inheritable, high),
    });
    // SAFETY: capset(2) reads the header and two cap data structs for version 3;
    // both are live, properly laid out (#[repr(C)]) locals.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `prctl(option, arg2, 0, 0, 0)`, its result or the error.
fn prctl(option: libc::c_int, arg2: libc::c_ulong) -> io::Result<libc::c_int> {
    // SAFETY: the prctl options used here (PR_CAPBSET_READ, PR_CAPBSET_DROP,
    // PR_CAP_AMBIENT, PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS) take integers only
    // and touch no memory of ours.
    let rc = unsafe {
        libc::prctl(
            option,
            arg2,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

/// The bounding set as a mask (`PR_CAPBSET_READ` for each capability the kernel
/// knows; it answers EINVAL past the last one).
pub fn bounding() -> io::Result<u64> {
    let mut mask = 0u64;
    for cap in 0..64u32 {
        match prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap)) {
            Ok(0) => {}
            Ok(_) => mask |= 1 << cap,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(mask)
}

/// Whether `no_new_privs` is set.
pub fn no_new_privs() -> io::Result<bool> {
    prctl(libc::PR_GET_NO_NEW_PRIVS, 0).map(|v| v == 1)
}

/// Keep only `CAP_NET_ADMIN` and `CAP_NET_RAW` (see the module doc) and set
/// `no_new_privs`. Call once, after the sockets are open and the configuration is
/// read, before the loop; it acts on the calling thread, which must be the only one
/// (vipd's loop is single-threaded). The error names the step that failed.
pub fn drop_to_net_admin_and_raw() -> io::Result<Dropped> {
    let step =
        |what: &'static str| move |e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
    // Ambient capabilities (Linux 4.3+; older kernels answer EINVAL: there are none).
    match prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
    ) {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
        Err(e) => return Err(step("prctl(PR_CAP_AMBIENT_CLEAR_ALL)")(e)),
    }
    let start = current().map_err(step("capget"))?;
    // The bounding set first: dropping from it needs CAP_SETPCAP, which the capset
    // below removes.
    let can_drop_bounding = start.effective & (1 << CAP_SETPCAP) != 0;
    if can_drop_bounding {
        let bset = bounding().map_err(step("prctl(PR_CAPBSET_READ)"))?;
        for cap in (0..64u32).filter(|c| bset & (1 << c) != 0 && KEEP & (1 << c) == 0) {
            prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap))
                .map_err(step("prctl(PR_CAPBSET_DROP)"))?;
        }
    }
    let kept = start.permitted & KEEP;
    set(CapSets {
        effective: kept,
        permitted: kept,
        inheritable: 0,
    })
    .map_err(step("capset"))?;
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1).map_err(step("prctl(PR_SET_NO_NEW_PRIVS)"))?;
    // Check what the kernel now says rather than trusting the calls.
    let now = current().map_err(step("capget"))?;
    if now.effective != kept || now.permitted != kept || now.inheritable != 0 {
        return Err(io::Error::other(format!(
            "capabilities still effective {:#x}, permitted {:#x} after capset",
            now.effective, now.permitted
        )));
    }
    Ok(Dropped {
        kept,
        bounding: can_drop_bounding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_mask_is_net_admin_and_net_raw() {
        assert_eq!(KEEP, 0x3000);
        assert_eq!(format!("{KEEP:016x}"), "0000000000003000");
    }

    #[test]
    fn reading_the_sets_works_unprivileged() {
        // Read-only calls: they work for any user and change nothing.
        let sets = current().expect("capget");
        assert_eq!(sets.effective & !sets.permitted, 0, "effective ⊆ permitted");
        // The read stops at the kernel's last capability.
        let bset = bounding().expect("PR_CAPBSET_READ");
        let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .expect("cap_last_cap")
            .trim()
            .parse()
            .expect("a number");
        assert_eq!(bset >> (last + 1), 0, "bounding {bset:#x}, last cap {last}");
        no_new_privs().expect("PR_GET_NO_NEW_PRIVS");
    }

    #[test]
    fn drop_keeps_at_most_the_two_and_sets_no_new_privs() {
        // On a thread of its own: capability sets, the bounding set and no_new_privs
        // are per thread, so the other tests keep theirs. Works as root (the two are
        // kept, the bounding set narrowed) and unprivileged (nothing to keep).
        std::thread::spawn(|| {
            let before = current().expect("capget");
            let bset_before = bounding().expect("bounding");
            let dropped = drop_to_net_admin_and_raw().expect("drop");
            assert_eq!(dropped.kept, before.permitted & KEEP);
            let after = current().expect("capget");
            assert_eq!(after.effective, dropped.kept);
            assert_eq!(after.permitted, dropped.kept);
            assert_eq!(after.inheritable, 0);
            let bset = bounding().expect("bounding");
            if dropped.bounding {
                assert_eq!(bset, bset_before & KEEP, "bounding {bset:#x}");
            } else {
                assert_eq!(bset, bset_before, "bounding set untouched");
            }
            assert!(no_new_privs().expect("no_new_privs"));
            // Dropping again changes nothing and still succeeds.
            assert_eq!(
                drop_to_net_admin_and_raw().expect("again").kept,
                dropped.kept
            );
        })
        .join()
        .expect("the test thread");
    }
}
