//! Access-log filters (`AccessLogFilter`) compiled for one listener and evaluated on a
//! request's record, with Envoy's semantics. Both the access logs and the connection
//! manager's `local_reply_config` mappers use them. Request headers are read through the
//! listener's capture slots, so a filter's headers are captured when a request begins.

use std::cell::Cell;
use std::time::Instant;

use super::format::Slots;
use super::record::{Flags, Rq};
use crate::config::{Comparison, HeaderMatcher, LogFilter, RuntimeSample};
use crate::util::Rng;

/// One compiled filter.
#[derive(Debug)]
pub enum Filter {
    Status(Comparison),
    Duration(Comparison),
    /// The matcher and the capture slot of its header.
    Header(HeaderMatcher, usize),
    /// Any of these flags; with `any`: any flag at all (an empty `flags` list).
    Flags {
        mask: u32,
        any: bool,
    },
    NotHealthCheck,
    /// baton has no tracing: no request is traced, so none passes (Envoy's answer for a
    /// connection manager without `tracing`).
    Traceable,
    Runtime(Sample),
    /// Whether each gRPC status (0..=16) is listed, and `exclude`; `grpc` and `trailer` are
    /// the capture slots of the response's `grpc-status` header and trailer.
    Grpc {
        listed: [bool; 17],
        exclude: bool,
        grpc: usize,
        trailer: usize,
    },
    And(Vec<Filter>),
    Or(Vec<Filter>),
}

/// A compiled `runtime_filter`.
pub struct Sample {
    numerator: u64,
    denominator: u64,
    /// The capture slot of `x-request-id`; None with `use_independent_randomness`.
    request_id: Option<usize>,
    /// The filter's own random numbers (a filter is evaluated through `&self`).
    rng: Cell<Option<Rng>>,
}

impl std::fmt::Debug for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sample")
            .field("numerator", &self.numerator)
            .field("denominator", &self.denominator)
            .field("request_id", &self.request_id)
            .finish()
    }
}

impl Sample {
    fn random(&self) -> u64 {
        let mut r = self.rng.take().unwrap_or_else(Rng::from_entropy);
        let v = r.next_u64();
        self.rng.set(Some(r));
        v
    }

    /// Envoy's rule: the request id's number (its first 8 hex digits) modulo the
    /// denominator, or a random number when there is no usable id or the filter asks for
    /// independent randomness; the request passes when that value modulo the denominator is
    /// below the numerator.
    fn passes(&self, rq: &Rq) -> bool {
        let id = self
            .request_id
            .and_then(|slot| rq.cap.as_deref()?.req(slot))
            .and_then(request_id_number);
        let v = match id {
            Some(n) => n % self.denominator,
            None => self.random(),
        };
        v % self.denominator < self.numerator.min(self.denominator)
    }
}

/// The number Envoy's UUID request-id extension reads from an id: its first 8 characters as
/// hex; None when they are not 8 hex digits.
pub fn request_id_number(id: &str) -> Option<u64> {
    let head = id.get(..8)?;
    if !head.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(head, 16).ok()
}

/// The gRPC status Envoy's `grpc_status_filter` sees: the response's `grpc-status` (a number
/// beyond the 17 known codes, or not a number, is an invalid code that matches no listed
/// status), else the one implied by the HTTP status (gRPC's HTTP mapping), else UNKNOWN.
fn grpc_status(header: Option<&str>, http: u16) -> Option<u8> {
    if let Some(v) = header {
        return v.trim().parse::<u8>().ok().filter(|&c| c <= 16);
    }
    Some(match http {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    })
}

impl Filter {
    /// Compiles `f`, registering the headers it reads in `slots`.
    pub fn compile(f: &LogFilter, slots: &mut Slots) -> Filter {
        match f {
            LogFilter::Status(c) => Filter::Status(*c),
            LogFilter::Duration(c) => Filter::Duration(*c),
            LogFilter::Header(h) => Filter::Header(h.clone(), slots.req_slot(&h.name)),
            LogFilter::ResponseFlags(names) => Filter::Flags {
                mask: names
                    .iter()
                    // Envoy's names baton never sets (`RL`, `FI`, ...) have no bit: they
                    // never match.
                    .filter_map(|n| Flags::NAMES.iter().find(|(_, f)| f == n).map(|(b, _)| *b))
                    .fold(0, |a, b| a | b),
                any: names.is_empty(),
            },
            LogFilter::NotHealthCheck => Filter::NotHealthCheck,
            LogFilter::Traceable => Filter::Traceable,
            LogFilter::Runtime(RuntimeSample {
                numerator,
                denominator,
                independent,
                ..
            }) => Filter::Runtime(Sample {
                numerator: u64::from(*numerator),
                denominator: u64::from((*denominator).max(1)),
                request_id: (!independent).then(|| slots.req_slot("x-request-id")),
                rng: Cell::new(None),
            }),
            LogFilter::GrpcStatus { statuses, exclude } => {
                let mut listed = [false; 17];
                for &s in statuses {
                    if let Some(l) = listed.get_mut(usize::from(s)) {
                        *l = true;
                    }
                }
                Filter::Grpc {
                    listed,
                    exclude: *exclude,
                    grpc: slots.resp_slot("grpc-status"),
                    trailer: slots.trailer_slot("grpc-status"),
                }
            }
            LogFilter::And(list) => {
                Filter::And(list.iter().map(|f| Filter::compile(f, slots)).collect())
            }
            LogFilter::Or(list) => {
                Filter::Or(list.iter().map(|f| Filter::compile(f, slots)).collect())
            }
        }
    }

    /// Whether `rq` passes. The duration is the request's (`%DURATION%`) once it has ended,
    /// else the time since it began (a local reply being written).
    pub fn matches(&self, rq: &Rq, now: Instant) -> bool {
        match self {
            Filter::Status(c) => c.holds(u64::from(rq.status)),
            Filter::Duration(c) => {
                let end = rq.end.unwrap_or(now);
                let ms = end.saturating_duration_since(rq.start).as_millis();
                c.holds(u64::try_from(ms).unwrap_or(u64::MAX))
            }
            Filter::Header(m, slot) => {
                let v = rq.cap.as_deref().and_then(|c| c.req(*slot));
                crate::route::matcher::value_matches(m, v)
            }
            Filter::Flags { mask, any } => {
                if *any {
                    !rq.flags.is_empty()
                } else {
                    rq.flags.bits() & mask != 0
                }
            }
            Filter::NotHealthCheck => !rq.health_check,
            Filter::Traceable => rq.trace_forced,
            Filter::Runtime(s) => s.passes(rq),
            Filter::Grpc {
                listed,
                exclude,
                grpc,
                trailer,
            } => {
                // Envoy's `Grpc::Common::getGrpcStatus`: the trailers' status, else the
                // headers' (a Trailers-Only answer).
                let header = rq
                    .cap
                    .as_deref()
                    .and_then(|c| c.resp(*trailer).or_else(|| c.resp(*grpc)));
                let found = grpc_status(header, rq.status)
                    .and_then(|s| listed.get(usize::from(s)).copied())
                    .unwrap_or(false);
                found != *exclude
            }
            Filter::And(l) => l.iter().all(|f| f.matches(rq, now)),
            Filter::Or(l) => l.iter().any(|f| f.matches(rq, now)),
        }
    }
}

#[cfg(test)]
mod tests;
