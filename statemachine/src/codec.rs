//! Byte codec for [`Message`]: length-prefixed frames, so the driver only moves bytes.
//!
//! Frame: `u32` big-endian length `L` (of what follows), `u8` type, `L - 1` payload bytes.
//! Integers are big-endian; strings are `u16` length + UTF-8; lists are `u32` count + items.
//! Every length is checked against what is left of the frame, so a hostile peer costs an
//! error, never a panic or a large allocation.

use std::fmt;

use crate::{FdBatch, Message, MovedConn, MovedTunnel, StatsSnapshot, MAX_FDS_PER_BATCH};

/// Bytes before the payload: length (4) and type (1).
pub const HEADER_LEN: usize = 5;

/// Largest accepted value of the length field (type + payload): 1 MiB.
pub const MAX_FRAME_LEN: usize = 1 << 20;

const T_HELLO: u8 = 1;
const T_HELLO_ACK: u8 = 2;
const T_REFUSE: u8 = 3;
const T_REQUEST_LISTENERS: u8 = 4;
const T_LISTENER_FDS: u8 = 5;
const T_FDS_ACK: u8 = 6;
const T_LISTENING: u8 = 7;
const T_ACCEPTING_STOPPED: u8 = 8;
const T_DRAIN_PARENT: u8 = 9;
const T_STATS: u8 = 10;
const T_CONNECTIONS: u8 = 11;
const T_TUNNELS: u8 = 12;
const T_TUNNELS_ACK: u8 = 13;

/// Why a frame could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// The length field is 0: no room for the type byte.
    EmptyFrame,
    /// The frame (or the one being encoded) is longer than [`MAX_FRAME_LEN`].
    Oversized { len: usize },
    /// The type byte names no message.
    UnknownType(u8),
    /// A field runs past the end of the frame.
    Truncated,
    /// The frame has bytes left after its last field.
    TrailingBytes { extra: usize },
    /// A string is not UTF-8.
    InvalidUtf8,
    /// A string is longer than its `u16` length can say (encoding only).
    StringTooLong { len: usize },
    /// A `ListenerFds` batch names more than [`MAX_FDS_PER_BATCH`] listeners.
    TooManyFds { count: usize },
    /// A boolean byte is neither 0 nor 1.
    InvalidBool(u8),
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::EmptyFrame => write!(f, "empty frame (length 0)"),
            CodecError::Oversized { len } => {
                write!(f, "frame of {len} bytes exceeds {MAX_FRAME_LEN}")
            }
            CodecError::UnknownType(t) => write!(f, "unknown message type {t}"),
            CodecError::Truncated => write!(f, "field runs past the end of the frame"),
            CodecError::TrailingBytes { extra } => write!(f, "{extra} trailing bytes in frame"),
            CodecError::InvalidUtf8 => write!(f, "string is not UTF-8"),
            CodecError::StringTooLong { len } => write!(f, "string of {len} bytes too long"),
            CodecError::TooManyFds { count } => {
                write!(f, "{count} fds in one batch (max {MAX_FDS_PER_BATCH})")
            }
            CodecError::InvalidBool(b) => write!(f, "invalid boolean byte {b}"),
        }
    }
}

impl std::error::Error for CodecError {}

/// Append one frame for `msg` to `out`; on error `out` is left as it was.
pub fn encode(msg: &Message, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let start = out.len();
    let result = encode_into(msg, out, start);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn encode_into(msg: &Message, out: &mut Vec<u8>, start: usize) -> Result<(), CodecError> {
    out.extend_from_slice(&[0; 4]);
    match msg {
        Message::Hello {
            protocol_version,
            binary_version,
            pid,
        } => {
            out.push(T_HELLO);
            out.extend_from_slice(&protocol_version.to_be_bytes());
            out.extend_from_slice(&pid.to_be_bytes());
            put_str(out, binary_version)?;
        }
        Message::HelloAck {
            protocol_version,
            binary_version,
            pid,
            epoch,
        } => {
            out.push(T_HELLO_ACK);
            out.extend_from_slice(&protocol_version.to_be_bytes());
            out.extend_from_slice(&pid.to_be_bytes());
            out.extend_from_slice(&epoch.to_be_bytes());
            put_str(out, binary_version)?;
        }
        Message::Refuse { reason } => {
            out.push(T_REFUSE);
            put_str(out, reason)?;
        }
        Message::RequestListeners { addresses } => {
            out.push(T_REQUEST_LISTENERS);
            put_strs(out, addresses)?;
        }
        Message::ListenerFds(batch) => {
            if batch.addresses.len() > MAX_FDS_PER_BATCH {
                return Err(CodecError::TooManyFds {
                    count: batch.addresses.len(),
                });
            }
            out.push(T_LISTENER_FDS);
            out.extend_from_slice(&batch.index.to_be_bytes());
            out.push(u8::from(batch.last));
            put_strs(out, &batch.addresses)?;
        }
        Message::FdsAck { batch } => {
            out.push(T_FDS_ACK);
            out.extend_from_slice(&batch.to_be_bytes());
        }
        Message::Listening => out.push(T_LISTENING),
        Message::AcceptingStopped => out.push(T_ACCEPTING_STOPPED),
        Message::DrainParent => out.push(T_DRAIN_PARENT),
        Message::Stats(stats) => {
            out.push(T_STATS);
            put_count(out, stats.counters.len())?;
            for (name, value) in &stats.counters {
                put_str(out, name)?;
                out.extend_from_slice(&value.to_be_bytes());
            }
            put_count(out, stats.gauges.len())?;
            for (name, value) in &stats.gauges {
                put_str(out, name)?;
                out.extend_from_slice(&value.to_be_bytes());
            }
        }
        Message::Connections(conns) => {
            if conns.len() > MAX_FDS_PER_BATCH {
                return Err(CodecError::TooManyFds { count: conns.len() });
            }
            out.push(T_CONNECTIONS);
            put_count(out, conns.len())?;
            for c in conns {
                put_str(out, &c.listener)?;
                put_str(out, &c.peer)?;
                put_count(out, c.pending.len())?;
                out.extend_from_slice(&c.pending);
            }
        }
        Message::Tunnels { batch, tunnels } => {
            if tunnels.len() * 2 > MAX_FDS_PER_BATCH {
                return Err(CodecError::TooManyFds {
                    count: tunnels.len() * 2,
                });
            }
            out.push(T_TUNNELS);
            out.extend_from_slice(&batch.to_be_bytes());
            put_count(out, tunnels.len())?;
            for t in tunnels {
                put_strs(
                    out,
                    &[
                        t.listener.clone(),
                        t.peer.clone(),
                        t.cluster.clone(),
                        t.upstream.clone(),
                    ],
                )?;
                for bytes in [&t.to_client, &t.to_upstream] {
                    put_count(out, bytes.len())?;
                    out.extend_from_slice(bytes);
                }
                out.push(t.fins);
                for v in [t.idle_ms, t.bytes_rx, t.bytes_tx, t.age_ms] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
                out.extend_from_slice(&t.status.to_be_bytes());
                out.extend_from_slice(&t.flags.to_be_bytes());
                out.push(t.minor);
            }
        }
        Message::TunnelsAck { batch } => {
            out.push(T_TUNNELS_ACK);
            out.extend_from_slice(&batch.to_be_bytes());
        }
    }
    let len = out.len() - start - 4;
    if len > MAX_FRAME_LEN {
        return Err(CodecError::Oversized { len });
    }
    let len32 = u32::try_from(len).map_err(|_| CodecError::Oversized { len })?;
    out[start..start + 4].copy_from_slice(&len32.to_be_bytes());
    Ok(())
}

fn put_count(out: &mut Vec<u8>, n: usize) -> Result<(), CodecError> {
    let n = u32::try_from(n).map_err(|_| CodecError::Oversized { len: n })?;
    out.extend_from_slice(&n.to_be_bytes());
    Ok(())
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), CodecError> {
    let len = u16::try_from(s.len()).map_err(|_| CodecError::StringTooLong { len: s.len() })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_strs(out: &mut Vec<u8>, items: &[String]) -> Result<(), CodecError> {
    put_count(out, items.len())?;
    items.iter().try_for_each(|s| put_str(out, s))
}

/// Decode the first frame of `buf`.
///
/// `Ok(None)`: not a whole frame yet, read more (an oversized or empty length is reported
/// as soon as the 4 length bytes are in). `Ok(Some((msg, used)))`: drop `used` bytes.
/// `Err`: the peer is broken or hostile; drop it.
pub fn decode(buf: &[u8]) -> Result<Option<(Message, usize)>, CodecError> {
    let Some(len_bytes) = buf.get(..4) else {
        return Ok(None);
    };
    let mut len4 = [0u8; 4];
    len4.copy_from_slice(len_bytes);
    let len = u32::from_be_bytes(len4) as usize;
    if len == 0 {
        return Err(CodecError::EmptyFrame);
    }
    if len > MAX_FRAME_LEN {
        return Err(CodecError::Oversized { len });
    }
    let Some(frame) = buf.get(4..4 + len) else {
        return Ok(None);
    };
    let mut r = Reader { rest: &frame[1..] };
    let msg = match frame[0] {
        T_HELLO => Message::Hello {
            protocol_version: r.u16()?,
            pid: r.u32()?,
            binary_version: r.string()?,
        },
        T_HELLO_ACK => Message::HelloAck {
            protocol_version: r.u16()?,
            pid: r.u32()?,
            epoch: r.u32()?,
            binary_version: r.string()?,
        },
        T_REFUSE => Message::Refuse {
            reason: r.string()?,
        },
        T_REQUEST_LISTENERS => Message::RequestListeners {
            addresses: r.strings()?,
        },
        T_LISTENER_FDS => {
            let index = r.u32()?;
            let last = match r.u8()? {
                0 => false,
                1 => true,
                b => return Err(CodecError::InvalidBool(b)),
            };
            let addresses = r.strings()?;
            if addresses.len() > MAX_FDS_PER_BATCH {
                return Err(CodecError::TooManyFds {
                    count: addresses.len(),
                });
            }
            Message::ListenerFds(FdBatch {
                index,
                last,
                addresses,
            })
        }
        T_FDS_ACK => Message::FdsAck { batch: r.u32()? },
        T_LISTENING => Message::Listening,
        T_ACCEPTING_STOPPED => Message::AcceptingStopped,
        T_DRAIN_PARENT => Message::DrainParent,
        T_STATS => {
            let mut stats = StatsSnapshot::default();
            for _ in 0..r.count(10)? {
                stats.counters.push((r.string()?, r.u64()?));
            }
            for _ in 0..r.count(10)? {
                stats
                    .gauges
                    .push((r.string()?, i64::from_be_bytes(r.array()?)));
            }
            Message::Stats(stats)
        }
        T_CONNECTIONS => {
            let n = r.count(8)?;
            if n > MAX_FDS_PER_BATCH {
                return Err(CodecError::TooManyFds { count: n });
            }
            let mut conns = Vec::with_capacity(n);
            for _ in 0..n {
                let listener = r.string()?;
                let peer = r.string()?;
                let len = r.count(1)?;
                let pending = r.take(len)?.to_vec();
                conns.push(MovedConn {
                    listener,
                    peer,
                    pending,
                });
            }
            Message::Connections(conns)
        }
        T_TUNNELS => {
            let batch = r.u32()?;
            let n = r.count(8)?;
            let mut tunnels = Vec::with_capacity(n);
            for _ in 0..n {
                let mut names = r.strings()?.into_iter();
                let mut name = || names.next().ok_or(CodecError::Truncated);
                let (listener, peer, cluster, upstream) = (name()?, name()?, name()?, name()?);
                let len = r.count(1)?;
                let to_client = r.take(len)?.to_vec();
                let len = r.count(1)?;
                let to_upstream = r.take(len)?.to_vec();
                tunnels.push(MovedTunnel {
                    listener,
                    peer,
                    cluster,
                    upstream,
                    to_client,
                    to_upstream,
                    fins: r.u8()?,
                    idle_ms: r.u64()?,
                    bytes_rx: r.u64()?,
                    bytes_tx: r.u64()?,
                    age_ms: r.u64()?,
                    status: r.u16()?,
                    flags: r.u16()?,
                    minor: r.u8()?,
                });
            }
            if n * 2 > MAX_FDS_PER_BATCH {
                return Err(CodecError::TooManyFds { count: n * 2 });
            }
            Message::Tunnels { batch, tunnels }
        }
        T_TUNNELS_ACK => Message::TunnelsAck { batch: r.u32()? },
        t => return Err(CodecError::UnknownType(t)),
    };
    if !r.rest.is_empty() {
        return Err(CodecError::TrailingBytes {
            extra: r.rest.len(),
        });
    }
    Ok(Some((msg, 4 + len)))
}

/// Bounds-checked cursor over one frame's payload.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.rest.len() < n {
            return Err(CodecError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, CodecError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A list count, rejected early if even `min_item` bytes per item cannot fit, so a
    /// lying count cannot make us loop or reserve memory.
    fn count(&mut self, min_item: usize) -> Result<usize, CodecError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_item) > self.rest.len() {
            return Err(CodecError::Truncated);
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String, CodecError> {
        let len = self.u16()? as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| CodecError::InvalidUtf8)
    }

    fn strings(&mut self) -> Result<Vec<String>, CodecError> {
        let n = self.count(2)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.string()?);
        }
        Ok(v)
    }
}
