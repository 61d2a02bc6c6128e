//! What the lab sees on the wire and in the kernel: tcpdump captures (a pcap reader and
//! writer, ARP decoding) and `ip monitor address`.

use std::io::{self, Read};
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{Netns, POLL, Proc, VIP, args, fmt_mac, join_bounded, lock, ms, run, tool, wait_until};
use io::ErrorKind::{InvalidData, UnexpectedEof};

/// One captured frame with its capture time.
#[derive(Debug, Clone)]
pub struct Frame {
    pub ts: SystemTime,
    pub data: Vec<u8>,
}

impl Frame {
    pub fn eth_src(&self) -> Option<[u8; 6]> {
        self.data.get(6..12).and_then(|s| s.try_into().ok())
    }
    pub fn ethertype(&self) -> Option<u16> {
        self.data
            .get(12..14)
            .map(|s| u16::from_be_bytes([s[0], s[1]]))
    }
}

/// Reads the classic pcap format from a stream: a 24-byte global header, then records with a
/// 16-byte header (ts_sec, ts_usec or ts_nsec, incl_len, orig_len). Either byte order,
/// microsecond or nanosecond magic; Ethernet link type only.
pub struct PcapReader<R> {
    inner: R,
    big_endian: bool,
    nanos: bool,
}

const PCAP_MAX_RECORD: u32 = 262_144;

impl<R: Read> PcapReader<R> {
    pub fn new(mut inner: R) -> io::Result<Self> {
        let mut hdr = [0u8; 24];
        if !read_full(&mut inner, &mut hdr)? {
            return Err(io::Error::new(UnexpectedEof, "no pcap header"));
        }
        let magic = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        let (big_endian, nanos) = match magic {
            0xa1b2_c3d4 => (false, false),
            0xa1b2_3c4d => (false, true),
            0xd4c3_b2a1 => (true, false),
            0x4d3c_b2a1 => (true, true),
            _ => return Err(invalid(format!("not a pcap stream (magic {magic:#010x})"))),
        };
        let r = PcapReader {
            inner,
            big_endian,
            nanos,
        };
        let linktype = r.u32_at(&hdr, 20);
        if linktype != 1 {
            return Err(invalid(format!(
                "pcap link type {linktype}, want 1 (Ethernet)"
            )));
        }
        Ok(r)
    }

    fn u32_at(&self, b: &[u8], at: usize) -> u32 {
        let w = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        [u32::from_le_bytes(w), u32::from_be_bytes(w)][usize::from(self.big_endian)]
    }

    /// The next frame, or None at a clean end of stream.
    pub fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        let mut rec = [0u8; 16];
        if !read_full(&mut self.inner, &mut rec)? {
            return Ok(None);
        }
        let sec = self.u32_at(&rec, 0);
        let frac = self.u32_at(&rec, 4);
        let incl = self.u32_at(&rec, 8);
        if incl > PCAP_MAX_RECORD {
            return Err(invalid(format!("pcap record of {incl} bytes")));
        }
        let nanos = if self.nanos {
            frac
        } else {
            frac.saturating_mul(1000)
        };
        let mut data = vec![0u8; incl as usize];
        if !read_full(&mut self.inner, &mut data)? && incl > 0 {
            return Err(io::Error::new(UnexpectedEof, "truncated record"));
        }
        let ts = UNIX_EPOCH + Duration::new(u64::from(sec), nanos.min(999_999_999));
        Ok(Some(Frame { ts, data }))
    }
}

fn invalid(why: String) -> io::Error {
    io::Error::new(InvalidData, why)
}

/// Fills `buf`; Ok(false) on EOF before the first byte, an error on EOF in the middle.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(io::Error::new(UnexpectedEof, "short read")),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// An ARP packet in an Ethernet frame, every field decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arp {
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    pub htype: u16,
    pub ptype: u16,
    pub hlen: u8,
    pub plen: u8,
    pub op: u16,
    pub sha: [u8; 6],
    pub spa: Ipv4Addr,
    pub tha: [u8; 6],
    pub tpa: Ipv4Addr,
}

impl Arp {
    /// Decodes an Ethernet frame with ethertype 0x0806 (no VLAN tag); None for anything else or
    /// a frame too short for IPv4-over-Ethernet ARP.
    pub fn parse(frame: &[u8]) -> Option<Arp> {
        if frame.len() < 42 || frame[12..14] != [0x08, 0x06] {
            return None;
        }
        let a = &frame[14..];
        let mac = |s: &[u8]| -> [u8; 6] { [s[0], s[1], s[2], s[3], s[4], s[5]] };
        let be16 = |s: &[u8]| u16::from_be_bytes([s[0], s[1]]);
        Some(Arp {
            eth_dst: mac(&frame[0..6]),
            eth_src: mac(&frame[6..12]),
            htype: be16(&a[0..2]),
            ptype: be16(&a[2..4]),
            hlen: a[4],
            plen: a[5],
            op: be16(&a[6..8]),
            sha: mac(&a[8..14]),
            spa: Ipv4Addr::new(a[14], a[15], a[16], a[17]),
            tha: mac(&a[18..24]),
            tpa: Ipv4Addr::new(a[24], a[25], a[26], a[27]),
        })
    }

    /// A gratuitous ARP request for `vip` from `mac`, as RFC 5227 §3 describes.
    pub fn is_garp_request(&self, vip: Ipv4Addr, mac: [u8; 6]) -> bool {
        self.eth_dst == [0xff; 6]
            && self.eth_src == mac
            && self.htype == 1
            && self.ptype == 0x0800
            && self.hlen == 6
            && self.plen == 4
            && self.op == 1
            && self.sha == mac
            && self.spa == vip
            && self.tpa == vip
            && self.tha == [0; 6]
    }
}

impl std::fmt::Display for Arp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} > {} op {} sha {} spa {} tha {} tpa {} (htype {} ptype {:#06x} hlen {} plen {})",
            fmt_mac(&self.eth_src),
            fmt_mac(&self.eth_dst),
            self.op,
            fmt_mac(&self.sha),
            self.spa,
            fmt_mac(&self.tha),
            self.tpa,
            self.htype,
            self.ptype,
            self.hlen,
            self.plen
        )
    }
}

/// A running `tcpdump --immediate-mode -U -w -` inside a namespace (immediate: no ring-buffer
/// block delay before frames reach us), its pcap stream parsed live by a thread.
pub struct Capture {
    frames: Arc<Mutex<Vec<Frame>>>,
    reader_error: Arc<Mutex<Option<String>>>,
    proc: Proc,
    reader: Option<JoinHandle<()>>,
    pub what: String,
}

/// tcpdump's filter for ARP announcements: every ARP frame but the probes for another
/// holder (sender address 0.0.0.0), which a holder sends every conflict-probe-interval.
pub const ANNOUNCEMENTS: &str = "arp and arp[14:4] != 0";

impl Capture {
    /// Starts capturing on `ifname` in `ns` with the tcpdump `filter` (e.g. "arp"; "" for all)
    /// and returns once tcpdump is really capturing ("listening on" on its stderr; at most 10 s).
    pub fn start(ns: &Netns, ifname: &str, filter: &str) -> Capture {
        let what = format!("tcpdump on {ifname} in {}", ns.name);
        let mut cmd = Command::new(tool("ip"));
        cmd.args(["netns", "exec", &ns.name])
            .arg(tool("tcpdump"))
            .args(args(&format!(
                "-i {ifname} -n --immediate-mode -U -s 0 -w -"
            )));
        if !filter.is_empty() {
            cmd.arg(filter);
        }
        let mut proc = Proc::spawn(&what, cmd, false);
        let stdout = proc
            .take_stdout()
            .unwrap_or_else(|| panic!("{what}: no stdout"));
        let frames = Arc::new(Mutex::new(Vec::new()));
        let reader_error = Arc::new(Mutex::new(None));
        let reader = {
            let frames = Arc::clone(&frames);
            let reader_error = Arc::clone(&reader_error);
            thread::spawn(move || {
                let result = PcapReader::new(stdout).and_then(|mut r| {
                    while let Some(f) = r.next_frame()? {
                        lock(&frames).push(f);
                    }
                    Ok(())
                });
                if let Err(e) = result {
                    if e.kind() != UnexpectedEof || !lock(&frames).is_empty() {
                        *lock(&reader_error) = Some(e.to_string());
                    }
                }
            })
        };
        let listening = wait_until(Duration::from_secs(10), ms(10), || {
            proc.stderr().contains("listening on") || !proc.is_running()
        });
        if listening.is_none() || !proc.is_running() {
            panic!("{what} did not start capturing\n{}", proc.log());
        }
        Capture {
            frames,
            reader_error,
            proc,
            reader: Some(reader),
            what,
        }
    }

    /// Every frame captured so far.
    pub fn frames(&self) -> Vec<Frame> {
        if let Some(e) = lock(&self.reader_error).as_ref() {
            panic!("{}: pcap stream error: {e}", self.what);
        }
        lock(&self.frames).clone()
    }

    /// Every ARP packet captured so far, with its capture time.
    pub fn arps(&self) -> Vec<(SystemTime, Arp)> {
        self.frames()
            .iter()
            .filter(|f| f.ethertype() == Some(0x0806))
            .map(|f| {
                let arp = Arp::parse(&f.data).unwrap_or_else(|| {
                    panic!("{}: undecodable ARP frame {:02x?}", self.what, f.data)
                });
                (f.ts, arp)
            })
            .collect()
    }

    /// Waits (at most `timeout`) until at least `n` ARP packets are captured; returns them all.
    pub fn wait_arps(&self, n: usize, timeout: Duration) -> Vec<(SystemTime, Arp)> {
        wait_until(timeout, POLL, || self.arps().len() >= n);
        self.arps()
    }

    /// What tcpdump said, for failure messages.
    pub fn log(&self) -> String {
        self.proc.log()
    }

    /// Stops tcpdump; the frames stay readable.
    pub fn stop(&mut self) {
        self.proc.stop();
        join_bounded(self.reader.take());
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One line per ARP packet, for failure messages.
pub fn describe_arps(arps: &[(SystemTime, Arp)]) -> String {
    describe_timed(arps, |a| a.to_string())
}

/// One line per item, its time relative to the first and what `show` says of it.
pub fn describe_timed<T>(items: &[(SystemTime, T)], show: impl Fn(&T) -> String) -> String {
    let t0 = items.first().map(|(t, _)| *t);
    items
        .iter()
        .map(|(t, a)| {
            let rel = t0
                .and_then(|t0| t.duration_since(t0).ok())
                .unwrap_or_default();
            format!("  +{:>6} ms  {}\n", rel.as_millis(), show(a))
        })
        .collect()
}

/// How far `b` is after `a` (negative when before), in milliseconds.
pub fn millis_between(a: SystemTime, b: SystemTime) -> i128 {
    match b.duration_since(a) {
        Ok(d) => d.as_millis() as i128,
        Err(e) => -(e.duration().as_millis() as i128),
    }
}
/// One change of the VIP seen by [`AddrMonitor`].
#[derive(Debug, Clone)]
pub struct AddrEvent {
    pub at: Instant,
    /// Added (true) or deleted (false).
    pub added: bool,
    pub line: String,
}

/// The address [`AddrMonitor`] adds and deletes to see that it listens.
const MARKER: &str = "198.51.100.254/32";

/// `ip -o monitor address` inside a namespace: every add and delete of the VIP on one
/// interface, with the time it was read. Unlike polling, it sees a delete followed at once by
/// an add (a flap). A notification for a copy already there (its lifetime refreshed) is no
/// event: it is only counted ([`AddrMonitor::refreshes`]).
pub struct AddrMonitor {
    events: Arc<Mutex<Vec<AddrEvent>>>,
    refreshes: Arc<AtomicUsize>,
    proc: Proc,
    reader: Option<JoinHandle<()>>,
    ifname: String,
    ns: String,
}

impl AddrMonitor {
    /// Starts the monitor and returns once it is seen listening (a marker address added to
    /// and deleted from `lo` shows up in its output; at most 10 s).
    pub fn start(ns: &Netns, ifname: &str) -> AddrMonitor {
        let mut cmd = Command::new(tool("ip"));
        cmd.args(["-n", &ns.name, "-o", "monitor", "address"]);
        let what = format!("ip monitor address in {}", ns.name);
        let mut proc = Proc::spawn(&what, cmd, false);
        let stdout = proc
            .take_stdout()
            .unwrap_or_else(|| panic!("{what}: no stdout"));
        let events = Arc::new(Mutex::new(Vec::new()));
        let marker = Arc::new(AtomicUsize::new(0));
        let refreshes = Arc::new(AtomicUsize::new(0));
        // The copies there now: a notification for one of them is a refresh.
        let mut present: Vec<String> = ns
            .prefixes_of(ifname, VIP.parse().expect("VIP"))
            .iter()
            .map(|len| format!("{VIP}/{len}"))
            .collect();
        let reader = {
            let events = Arc::clone(&events);
            let refreshes = Arc::clone(&refreshes);
            let marker = Arc::clone(&marker);
            let ifname = ifname.to_string();
            thread::spawn(move || {
                let vip = format!("inet {VIP}/");
                let mut lines = io::BufReader::new(stdout);
                let mut line = String::new();
                loop {
                    line.clear();
                    match io::BufRead::read_line(&mut lines, &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    let at = Instant::now();
                    if line.contains(&format!("inet {MARKER}")) {
                        marker.fetch_add(1, Ordering::SeqCst);
                    }
                    let on_if = line.split_whitespace().nth(1) == Some(ifname.as_str())
                        || line.split_whitespace().nth(2) == Some(ifname.as_str());
                    if line.contains(&vip) && on_if {
                        let copy = line
                            .split_whitespace()
                            .find(|w| w.starts_with(&vip[5..]))
                            .unwrap_or_default()
                            .to_string();
                        let deleted = line.starts_with("Deleted");
                        if deleted {
                            present.retain(|c| *c != copy);
                        } else if present.contains(&copy) {
                            refreshes.fetch_add(1, Ordering::SeqCst);
                            continue;
                        } else {
                            present.push(copy);
                        }
                        lock(&events).push(AddrEvent {
                            at,
                            added: !line.starts_with("Deleted"),
                            line: line.trim_end().to_string(),
                        });
                    }
                }
            })
        };
        let m = AddrMonitor {
            events,
            refreshes,
            proc,
            reader: Some(reader),
            ifname: ifname.to_string(),
            ns: ns.name.clone(),
        };
        let listening = wait_until(Duration::from_secs(10), ms(50), || {
            for op in ["add", "del"] {
                let _ = run(
                    &tool("ip"),
                    &["-n", &ns.name, "addr", op, MARKER, "dev", "lo"],
                );
            }
            marker.load(Ordering::SeqCst) > 0
        });
        if listening.is_none() {
            panic!("{} did not start\n{}", m.ns, m.proc.log());
        }
        m
    }

    /// How many notifications for a copy of the VIP already there (lifetime refreshes)
    /// were seen so far.
    pub fn refreshes(&self) -> usize {
        self.refreshes.load(Ordering::SeqCst)
    }

    /// Every add and delete of the VIP on the interface so far.
    pub fn events(&self) -> Vec<AddrEvent> {
        lock(&self.events).clone()
    }

    /// The events at or after `since`.
    pub fn events_since(&self, since: Instant) -> Vec<AddrEvent> {
        self.events()
            .into_iter()
            .filter(|e| e.at >= since)
            .collect()
    }

    /// One line per event relative to `t0`, for failure messages.
    pub fn describe(&self, t0: Instant) -> String {
        self.events()
            .iter()
            .map(|e| {
                let rel = e.at.saturating_duration_since(t0).as_millis() as i128
                    - t0.saturating_duration_since(e.at).as_millis() as i128;
                format!("  {rel:>+7} ms  {}\n", e.line)
            })
            .collect::<String>()
            + &format!("  (interface {})\n", self.ifname)
    }
}

impl Drop for AddrMonitor {
    fn drop(&mut self) {
        self.proc.stop();
        join_bounded(self.reader.take());
    }
}

/// A classic pcap file: its header (byte order and `magic` as given, Ethernet) and a record
/// of (seconds, fraction, frame) for each of `records`.
pub fn pcap(big_endian: bool, magic: u32, records: &[(u32, u32, &[u8])]) -> Vec<u8> {
    let w32 = |v: u32| [v.to_le_bytes(), v.to_be_bytes()][usize::from(big_endian)];
    let w16 = |v: u16| [v.to_le_bytes(), v.to_be_bytes()][usize::from(big_endian)];
    let mut b = Vec::new();
    b.extend_from_slice(&w32(magic));
    b.extend_from_slice(&w16(2));
    b.extend_from_slice(&w16(4));
    b.extend_from_slice(&[0; 8]); // thiszone, sigfigs
    b.extend_from_slice(&w32(262_144));
    b.extend_from_slice(&w32(1)); // LINKTYPE_ETHERNET
    for (sec, frac, data) in records {
        let len = u32::try_from(data.len()).expect("frame length");
        for word in [*sec, *frac, len, len] {
            b.extend_from_slice(&w32(word));
        }
        b.extend_from_slice(data);
    }
    b
}

/// `frames` as a pcap file with microsecond timestamps.
pub fn pcap_of(frames: &[(SystemTime, Vec<u8>)]) -> Vec<u8> {
    let records: Vec<(u32, u32, &[u8])> = frames
        .iter()
        .map(|(ts, data)| {
            let t = ts.duration_since(UNIX_EPOCH).unwrap_or_default();
            (t.as_secs() as u32, t.subsec_micros(), &data[..])
        })
        .collect();
    pcap(false, 0xa1b2_c3d4, &records)
}
