//! Traffic for the KINK tests: pings through the SAs, and hand-made
//! (tampered, truncated) KINK datagrams.

use super::*;

/// Ping results.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PingStats {
    /// Echo requests sent.
    pub sent: u32,
    /// Replies received.
    pub received: u32,
    /// ping's output (and error), for messages.
    pub output: String,
}

impl PingStats {
    /// Reads `N packets transmitted, M received` from ping's summary.
    pub fn parse(output: &str) -> Self {
        let mut stats = Self {
            output: output.to_owned(),
            ..Self::default()
        };
        if let Some(line) = output.lines().find(|l| l.contains("packets transmitted")) {
            let words = line.split(|c: char| c == ',' || c.is_whitespace());
            let mut prev: Option<u32> = None;
            for w in words {
                match (w, prev) {
                    ("packets", Some(n)) => stats.sent = n,
                    ("received", Some(n)) => stats.received = n,
                    _ => {}
                }
                if !w.is_empty() {
                    prev = w.parse().ok();
                }
            }
        }
        stats
    }
}

/// Pings `dst` from `src` inside `netns`: `count` echo requests `interval`
/// seconds apart, each waiting up to 1 s.
pub fn ping(netns: &Netns, src: IpAddr, dst: IpAddr, count: u32, interval: &str) -> PingStats {
    let (src, dst, count) = (src.to_string(), dst.to_string(), count.to_string());
    let args = [
        "-n", "-c", &count, "-i", interval, "-W", "1", "-I", &src, &dst,
    ];
    match netns.command("ping").args(args).output() {
        Ok(out) => PingStats::parse(&format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => PingStats {
            output: format!("cannot run ping: {e}"),
            ..PingStats::default()
        },
    }
}

/// Pings (3 at a time) until all three pass or `timeout` is over: the first
/// packets are dropped while kinkd negotiates (no queueing). Returns the
/// last round.
pub fn ping_until_passes(netns: &Netns, src: IpAddr, dst: IpAddr, timeout: Duration) -> PingStats {
    let deadline = Instant::now() + timeout;
    loop {
        let round = ping(netns, src, dst, 3, "0.2");
        if round.received == 3 || Instant::now() >= deadline {
            return round;
        }
    }
}

/// A ping run in the background (e.g. across a rekey), stopped on drop.
#[derive(Debug)]
pub struct BackgroundPing {
    child: ChildGuard,
    log: PathBuf,
}

impl BackgroundPing {
    /// Starts `ping -c COUNT -i INTERVAL` from `src` to `dst` in `netns`,
    /// output to `log`.
    ///
    /// # Errors
    /// ping cannot be started.
    pub fn start(
        netns: &Netns,
        src: IpAddr,
        dst: IpAddr,
        count: u32,
        interval: &str,
        log: &Path,
    ) -> Result<Self> {
        let child = Launch::new("ping", log)
            .netns(netns)
            .args(["-n", "-c", &count.to_string(), "-i", interval, "-W", "1"])
            .args(["-I", &src.to_string(), &dst.to_string()])
            .term_timeout(Duration::from_secs(2))
            .spawn()?;
        Ok(Self {
            child,
            log: log.to_owned(),
        })
    }

    /// Waits up to `timeout` for ping to finish (stops it then) and returns
    /// its summary.
    pub fn finish(mut self, timeout: Duration) -> PingStats {
        wait_for(|| self.child.try_exit_status().is_some(), timeout);
        // SIGTERM (not SIGINT) ends ping without a summary; then it is empty.
        self.child.stop();
        PingStats::parse(&read_lossy(&self.log))
    }
}

/// Flips the last octet of a KINK message: it lies in the KINK_CKSUM (the
/// checksum is the message's last CksumLen octets, kink.md "KINK_CKSUM
/// placement"), so the message still parses but does not verify.
pub fn flip_cksum(msg: &[u8]) -> Vec<u8> {
    let mut out = msg.to_vec();
    if let Some(last) = out.last_mut() {
        *last ^= 0x01;
    }
    out
}

/// The message cut to its first `len` octets with its header unchanged: the
/// Length field then claims more than the datagram holds (KINK_PROTOERR,
/// counted as malformed).
pub fn truncate(msg: &[u8], len: usize) -> Vec<u8> {
    msg[..len.min(msg.len())].to_vec()
}

/// A datagram to `dst`:910 from `src`:910 with `payload`.
pub fn kink_datagram(src: Ipv4Addr, dst: Ipv4Addr, payload: Vec<u8>) -> crate::datagram::Datagram {
    crate::datagram::Datagram {
        src: SocketAddrV4::new(src, KINK_PORT),
        dst: SocketAddrV4::new(dst, KINK_PORT),
        payload,
    }
}
