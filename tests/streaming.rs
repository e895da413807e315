//! 100 MiB in each direction through baton with its peak RSS under 64 MiB: bodies are
//! streamed with bounded buffers, never collected.

mod common;

use common::*;
use std::io::Write;

const SIZE: u64 = 100 * 1024 * 1024;
const RSS_LIMIT_KIB: u64 = 64 * 1024;

#[test]
fn upload_100_mib_streams_with_flat_memory() {
    let (b, up) = proxy_with_upstream();
    let mut c = RawConn::connect(b.port);
    c.send(
        format!("POST /sink HTTP/1.1\r\nHost: test\r\nContent-Length: {SIZE}\r\n\r\n").as_bytes(),
    );
    let block = pattern::block(26 * 2521);
    let mut sent = 0u64;
    while sent < SIZE {
        let n = (SIZE - sent).min(block.len() as u64) as usize;
        c.stream.write_all(&block[..n]).expect("upload write");
        sent += n as u64;
    }
    let r = c.expect_response(false);
    assert_eq!(
        r.body_str(),
        format!("len={SIZE} fnv={:016x}\n", pattern::pattern_checksum(SIZE))
    );
    assert_eq!(up.seen()[0].body_len, SIZE);
    let hwm = b.hwm_kib();
    assert!(
        hwm < RSS_LIMIT_KIB,
        "baton peak RSS {hwm} KiB for a 100 MiB upload"
    );
}

#[test]
fn download_100_mib_streams_with_flat_memory() {
    let (b, _up) = proxy_with_upstream();
    let mut c = RawConn::connect(b.port);
    c.send(&get(&format!("/bytes/{SIZE}")));
    c.expect_pattern(SIZE);
    let hwm = b.hwm_kib();
    assert!(
        hwm < RSS_LIMIT_KIB,
        "baton peak RSS {hwm} KiB for a 100 MiB download"
    );
}

#[test]
fn download_with_curl_is_complete() {
    let (b, _up) = proxy_with_upstream();
    let url = format!("http://127.0.0.1:{}/bytes/10485760", b.port);
    let out = curl_ok(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{size_download}",
        &url,
    ]);
    assert_eq!(out, "200 10485760");
}
