//! Connection-manager and cluster fields against the real binary, each as Envoy defines it:
//! `server_name` with each `server_header_transformation`, `generate_request_id`,
//! `keep_empty_value`, `dns_refresh_rate`, and `/config_dump` giving a bootstrap that loads
//! back and serves the same.

mod admin_util;
mod common;
mod routing_support;

use std::io::Write;
use std::net::TcpListener;
use std::time::Duration;

use admin_util::{admin_get, eventually, stat, wait_live};
use common::*;
use routing_support::*;

/// An upstream answering every request with 200; `/with-server` also sends `server: origin`.
fn server_header_upstream() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let Some(head) = read_head(&mut s) else {
                continue;
            };
            let server = if head.starts_with(b"GET /with-server ") {
                "server: origin\r\n"
            } else {
                ""
            };
            let _ = s.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\n{server}content-length: 2\r\nconnection: close\r\n\r\nok"
                )
                .as_bytes(),
            );
        }
    });
    port
}

fn with_hcm(lines: &str, route_config: &str, clusters: &[String]) -> String {
    config(free_port(), route_config, clusters).replacen(
        "          route_config:\n",
        &format!("{lines}          route_config:\n"),
        1,
    )
}

#[test]
fn server_name_and_server_header_transformation() {
    let up = server_header_upstream();
    let rc = single_vhost(
        "  - match: {prefix: /local}\n    direct_response: {status: 200}\n  - match: {prefix: /}\n    route: {cluster: svc}\n",
    );
    // (transformation, upstream sends one, upstream sends none, local reply)
    let cases = [
        ("OVERWRITE", Some("edge"), Some("edge"), Some("edge")),
        (
            "APPEND_IF_ABSENT",
            Some("origin"),
            Some("edge"),
            Some("edge"),
        ),
        ("PASS_THROUGH", Some("origin"), None, Some("edge")),
    ];
    for (mode, with, without, local) in cases {
        let b = Baton::start(&with_hcm(
            &format!(
                "          server_name: edge\n          server_header_transformation: {mode}\n"
            ),
            &rc,
            &[cluster("svc", &[up])],
        ));
        let r = fetch(b.port, "x", "/with-server", "");
        assert_eq!(r.status(), 200);
        assert_eq!(r.header("server"), with, "{mode}, upstream sends one");
        let r = fetch(b.port, "x", "/plain", "");
        assert_eq!(r.header("server"), without, "{mode}, upstream sends none");
        let r = fetch(b.port, "x", "/local", "");
        assert_eq!(r.header("server"), local, "{mode}, local reply");
    }
}

#[test]
fn generate_request_id_false_adds_none_and_keeps_the_clients() {
    let up = Upstream::start("up");
    let rc = single_vhost("  - match: {prefix: /}\n    route: {cluster: svc}\n");
    let b = Baton::start(&with_hcm(
        "          generate_request_id: false\n",
        &rc,
        &[cluster("svc", &[up.port()])],
    ));
    assert_eq!(fetch(b.port, "x", "/a", "").status(), 200);
    assert_eq!(
        fetch(b.port, "x", "/b", "x-request-id: mine\r\n").status(),
        200
    );
    let seen = up.seen();
    assert_eq!(seen[0].header("x-request-id"), None);
    assert_eq!(seen[1].header("x-request-id"), Some("mine"));
}

#[test]
fn keep_empty_value_adds_a_header_whose_value_renders_empty() {
    let up = Upstream::start("up");
    let rc = single_vhost(
        "  - match: {prefix: /}\n    route: {cluster: svc}\n    request_headers_to_add:\n    - {header: {key: x-dropped, value: '%REQ(x-absent)%'}}\n    - {header: {key: x-kept, value: '%REQ(x-absent)%'}, keep_empty_value: true}\n",
    );
    let b = Baton::start(&config(free_port(), &rc, &[cluster("svc", &[up.port()])]));
    assert_eq!(fetch(b.port, "x", "/", "").status(), 200);
    let seen = up.seen();
    assert_eq!(seen[0].header("x-dropped"), None);
    assert_eq!(seen[0].header("x-kept"), Some(""));
}

#[test]
fn dns_refresh_rate_sets_how_often_a_dns_cluster_resolves() {
    let up = Upstream::start("up");
    let admin = free_port();
    let rc = single_vhost("  - match: {prefix: /}\n    route: {cluster: svc}\n");
    let fast = cluster_at(
        "svc",
        "localhost",
        "STRICT_DNS",
        &[up.port()],
        "  dns_refresh_rate: 0.05s\n",
    );
    let slow = cluster_at(
        "slow",
        "localhost",
        "STRICT_DNS",
        &[up.port()],
        "  dns_refresh_rate: 3600s\n",
    );
    let yaml = format!(
        "{}admin:\n  address:\n    socket_address: {{address: 127.0.0.1, port_value: {admin}}}\n",
        config(free_port(), &rc, &[fast, slow])
    );
    let _b = Baton::start(&yaml);
    wait_live(admin);
    let resolved = |c: &str| {
        stat(admin, &format!("cluster.{c}.update_success"))
            + stat(admin, &format!("cluster.{c}.update_failure"))
    };
    assert!(
        eventually(Duration::from_secs(30), || resolved("svc") >= 5),
        "svc resolved {} times",
        resolved("svc")
    );
    // The hourly cluster has resolved only at start-up meanwhile.
    assert_eq!(resolved("slow"), 1);
}

/// The `bootstrap` of a `/config_dump`, with its listener and admin ports moved to free ones
/// so a second process can serve it next to the first.
fn dumped_bootstrap(admin: u16) -> (String, u16, u16) {
    let dump: serde_yaml::Value =
        serde_yaml::from_str(&admin_get(admin, "/config_dump")).expect("JSON");
    let configs = dump["configs"].as_sequence().expect("configs");
    assert_eq!(configs.len(), 1);
    assert_eq!(
        configs[0]["@type"].as_str(),
        Some("type.googleapis.com/envoy.admin.v3.BootstrapConfigDump")
    );
    let mut b = configs[0]["bootstrap"].clone();
    let (listen, admin2) = (free_port(), free_port());
    b["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] =
        listen.into();
    b["admin"]["address"]["socket_address"]["port_value"] = admin2.into();
    // Listeners first: the test harness takes the first port_value as the listener's.
    let mut ordered = serde_yaml::Mapping::new();
    let m = b.as_mapping().expect("bootstrap map");
    for (k, v) in m
        .iter()
        .filter(|(k, _)| k.as_str() == Some("static_resources"))
    {
        ordered.insert(k.clone(), v.clone());
    }
    for (k, v) in m
        .iter()
        .filter(|(k, _)| k.as_str() != Some("static_resources"))
    {
        ordered.insert(k.clone(), v.clone());
    }
    (
        serde_yaml::to_string(&ordered).expect("YAML"),
        listen,
        admin2,
    )
}

#[test]
fn config_dump_is_a_bootstrap_that_validates_and_serves_the_same() {
    let up = Upstream::start("up");
    let admin = free_port();
    let rc = "name: rc
response_headers_to_add:
- {header: {key: x-gen, value: one}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
virtual_hosts:
- name: vh
  domains: ['*']
  routes:
  - match: {path: /teapot}
    direct_response: {status: 418, body: {inline_string: short and stout}}
  - match: {prefix: /old/}
    redirect: {prefix_rewrite: /new/, response_code: FOUND}
  - match: {safe_regex: {regex: '/v[0-9]+/.*'}, headers: [{name: x-api, present_match: true}]}
    route: {cluster: svc, regex_rewrite: {pattern: {regex: '^/v([0-9]+)/'}, substitution: '/api/\\1/'}}
  - match: {prefix: /}
    route: {cluster: svc, prefix_rewrite: /root/, timeout: 3s}
";
    let yaml = format!(
        "{}admin:\n  address:\n    socket_address: {{address: 127.0.0.1, port_value: {admin}}}\n",
        config(free_port(), rc, &[cluster("svc", &[up.port()])])
    );
    let first = Baton::start(&yaml);
    wait_live(admin);
    let (dumped, listen2, admin2) = dumped_bootstrap(admin);
    let file = std::env::temp_dir().join(format!("baton-dump-{}.yaml", std::process::id()));
    std::fs::write(&file, &dumped).expect("write dump");
    let path = file.to_str().expect("utf-8").to_string();
    let (st, out, err) = run_baton(&["--mode", "validate", "-c", &path], IO_TIMEOUT);
    assert!(st.success(), "{err}\n{dumped}");
    assert_eq!(out, format!("configuration '{path}' OK\n"));
    let second = Baton::start(&dumped);
    assert_eq!(second.port, listen2);
    wait_live(admin2);
    let _ = std::fs::remove_file(&file);
    for (path, extra) in [
        ("/teapot", ""),
        ("/old/x?q=1", ""),
        ("/v2/users", "x-api: 1\r\n"),
        ("/v2/users", ""),
        ("/else", ""),
    ] {
        let a = fetch(first.port, "h", path, extra);
        let b = fetch(second.port, "h", path, extra);
        assert_eq!(a.status(), b.status(), "{path}");
        assert_eq!(a.body_str(), b.body_str(), "{path}");
        assert_eq!(a.header("location"), b.header("location"), "{path}");
        assert_eq!(a.header("x-gen"), Some("one"), "{path}");
        assert_eq!(b.header("x-gen"), Some("one"), "{path}");
    }
    let targets: Vec<String> = up.seen().into_iter().map(|s| s.target).collect();
    assert_eq!(
        targets,
        [
            "/api/2/users",
            "/api/2/users",
            "/root/v2/users",
            "/root/v2/users",
            "/root/else",
            "/root/else"
        ]
    );
    // The dump of the second process is the first's, but for the ports that were moved.
    let again = admin_get(admin2, "/config_dump");
    let original = admin_get(admin, "/config_dump");
    assert_eq!(
        again
            .replace(&listen2.to_string(), "L")
            .replace(&admin2.to_string(), "A"),
        original
            .replace(&first.port.to_string(), "L")
            .replace(&admin.to_string(), "A")
    );
}

#[test]
fn node_is_shown_in_server_info_and_the_command_line_overrides_it() {
    let up = Upstream::start("up");
    let rc = single_vhost("  - match: {prefix: /}\n    route: {cluster: svc}\n");
    let admin = free_port();
    let yaml = format!(
        "{}admin:\n  address:\n    socket_address: {{address: 127.0.0.1, port_value: {admin}}}\nnode: {{id: n-7, cluster: c-7}}\n",
        config(free_port(), &rc, &[cluster("svc", &[up.port()])])
    );
    let _b = Baton::start(&yaml);
    wait_live(admin);
    let info = admin_get(admin, "/server_info");
    assert!(
        info.contains("\"node\":{\"id\":\"n-7\",\"cluster\":\"c-7\""),
        "{info}"
    );
    let admin2 = free_port();
    let yaml2 = yaml.replace(
        &format!("port_value: {admin}"),
        &format!("port_value: {admin2}"),
    );
    let listen2 = free_port();
    let yaml2 = yaml2.replacen(
        &format!(
            "port_value: {}",
            common::yaml::listener_port(&yaml).expect("port")
        ),
        &format!("port_value: {listen2}"),
        1,
    );
    let _b2 = Baton::start_args(&yaml2, &["--service-node", "cli-node"]);
    wait_live(admin2);
    let info = admin_get(admin2, "/server_info");
    assert!(
        info.contains("\"node\":{\"id\":\"cli-node\",\"cluster\":\"c-7\""),
        "{info}"
    );
}

/// The kernel's view (`/proc/net/tcp`) of baton's established connections to `port`: the
/// timer kind (2: keep-alive) and when it fires, in clock ticks.
fn timers_to(port: u16) -> Vec<(u32, u64)> {
    let remote = proc_addr(port);
    proc_tcp()
        .into_iter()
        .filter_map(|f| {
            if f.get(2) != Some(&remote) || f.get(3).map(String::as_str) != Some("01") {
                return None;
            }
            let (tr, when) = f.get(5)?.split_once(':')?;
            Some((
                u32::from_str_radix(tr, 16).ok()?,
                u64::from_str_radix(when, 16).ok()?,
            ))
        })
        .collect()
}

/// `upstream_connection_options.tcp_keepalive`: baton's pooled connection to the upstream
/// carries a keep-alive timer set to `keepalive_time` (the kernel's table shows it); without
/// the option it has none. Out-of-range values are refused with their path.
#[test]
fn tcp_keepalive_arms_the_kernels_keepalive_timer_on_upstream_connections() {
    for (extra, armed) in [
        ("  upstream_connection_options: {tcp_keepalive: {keepalive_time: 77, keepalive_interval: 5, keepalive_probes: 3}}\n", true),
        ("", false),
    ] {
        let up = Upstream::start("up");
        let b = Baton::start(&config(
            free_port(),
            &single_vhost("  - match: {prefix: /}\n    route: {cluster: svc}\n"),
            &[cluster_at("svc", "127.0.0.1", "STATIC", &[up.port()], extra)],
        ));
        assert_eq!(fetch(b.port, "x", "/", "").status(), 200);
        // The exchange is over; its upstream connection waits in the pool.
        let timers = timers_to(up.port());
        assert_eq!(timers.len(), 1, "{timers:?}");
        let (kind, when) = timers[0];
        if armed {
            assert_eq!(kind, 2, "a keep-alive timer: {timers:?}");
            // At most keepalive_time (77 s) ahead, in ticks of at most 1 ms.
            assert!(when > 0 && when <= 77_000, "{timers:?}");
        } else {
            assert_eq!(kind, 0, "no timer without the option: {timers:?}");
        }
    }
    let yaml = config(
        free_port(),
        &single_vhost("  - match: {prefix: /}\n    route: {cluster: svc}\n"),
        &[cluster_at(
            "svc",
            "127.0.0.1",
            "STATIC",
            &[1],
            "  upstream_connection_options: {tcp_keepalive: {keepalive_probes: 0}}\n",
        )],
    );
    let (status, _, err) = run_baton(&["--mode", "validate", "--config-yaml", &yaml], IO_TIMEOUT);
    assert!(!status.success());
    assert!(
        err.contains("clusters[0].upstream_connection_options.tcp_keepalive.keepalive_probes: must be between 1 and 127"),
        "{err}"
    );
}

/// A duplicate of baton's listening socket on 127.0.0.1:`port`, taken with pidfd_getfd(2)
/// (the test runs as the same user), to read the options the kernel holds for it.
fn listening_socket_of(pid: u32, port: u16) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    let inode = proc_tcp()
        .into_iter()
        .find(|f| f.get(1) == Some(&proc_addr(port)) && f.get(3).map(String::as_str) == Some("0A"))
        .and_then(|f| f.get(9).cloned())
        .expect("the listening socket in /proc/net/tcp");
    let target = format!("socket:[{inode}]");
    let fd = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/pid/fd")
        .filter_map(Result::ok)
        .find(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy() == target))
        .and_then(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .expect("baton holds the listening socket");
    // SAFETY: plain syscalls with integer arguments; each result is checked before use.
    unsafe {
        let pidfd = nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0);
        assert!(
            pidfd >= 0,
            "pidfd_open: {}",
            std::io::Error::last_os_error()
        );
        let dup = nix::libc::syscall(nix::libc::SYS_pidfd_getfd, pidfd, fd, 0);
        let err = std::io::Error::last_os_error();
        nix::libc::close(pidfd as i32);
        assert!(dup >= 0, "pidfd_getfd: {err}");
        std::os::fd::OwnedFd::from_raw_fd(dup as i32)
    }
}

fn int_option(fd: &std::os::fd::OwnedFd, level: i32, name: i32) -> i32 {
    use std::os::fd::AsRawFd;
    let mut v: i32 = -1;
    let mut len = std::mem::size_of::<i32>() as nix::libc::socklen_t;
    // SAFETY: `v` and `len` describe one writable C int.
    let rc = unsafe {
        nix::libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::from_mut(&mut v).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "getsockopt: {}", std::io::Error::last_os_error());
    v
}

/// A listener's `enable_reuse_port`, `tcp_fast_open_queue_length` and `socket_options` (at
/// each stage) are on its socket, as the kernel reports them; an option the kernel refuses
/// stops the start with the listener and the option named.
#[test]
fn listener_socket_options_are_set_on_the_listening_socket() {
    use nix::libc::{
        IPPROTO_TCP, SOL_SOCKET, SO_KEEPALIVE, SO_REUSEPORT, TCP_FASTOPEN, TCP_KEEPIDLE,
    };
    let up = Upstream::start("up");
    let with_socket = |port: u16, lines: &str| {
        config(
            port,
            &single_vhost("  - match: {prefix: /}\n    route: {cluster: svc}\n"),
            &[cluster("svc", &[up.port()])],
        )
        .replacen(
            "    filter_chains:\n",
            &format!("{lines}    filter_chains:\n"),
            1,
        )
    };
    let lines = "    enable_reuse_port: true\n    tcp_fast_open_queue_length: 17\n    socket_options:\n    - {level: 1, name: 9, int_value: 1}\n    - {description: keepidle, level: 6, name: 4, int_value: 123, state: STATE_LISTENING}\n";
    let b = Baton::start(&with_socket(free_port(), lines));
    assert_eq!(fetch(b.port, "x", "/", "").status(), 200);
    let fd = listening_socket_of(b.pid(), b.port);
    assert_eq!(int_option(&fd, SOL_SOCKET, SO_REUSEPORT), 1);
    assert_eq!(int_option(&fd, IPPROTO_TCP, TCP_FASTOPEN), 17);
    assert_eq!(int_option(&fd, SOL_SOCKET, SO_KEEPALIVE), 1);
    assert_eq!(int_option(&fd, IPPROTO_TCP, TCP_KEEPIDLE), 123);
    drop(fd);

    // Without them: none of these is set.
    let b = Baton::start(&with_socket(free_port(), ""));
    let fd = listening_socket_of(b.pid(), b.port);
    assert_eq!(int_option(&fd, SOL_SOCKET, SO_REUSEPORT), 0);
    assert_eq!(int_option(&fd, IPPROTO_TCP, TCP_FASTOPEN), 0);
    assert_eq!(int_option(&fd, SOL_SOCKET, SO_KEEPALIVE), 0);
    drop(fd);

    // An option the kernel refuses (no such SOL_SOCKET option) fails the start.
    let yaml = with_socket(
        free_port(),
        "    socket_options:\n    - {description: bogus, level: 1, name: 9999, int_value: 1}\n",
    );
    let (status, _, err) = run_baton(&["--config-yaml", &yaml], IO_TIMEOUT);
    assert!(!status.success());
    assert!(err.contains("socket option \"bogus\""), "{err}");
    // Byte-string options are refused at load, by path.
    let yaml = with_socket(
        free_port(),
        "    socket_options:\n    - {level: 1, name: 25, buf_value: ZXRoMA==}\n",
    );
    let (status, _, err) = run_baton(&["--mode", "validate", "--config-yaml", &yaml], IO_TIMEOUT);
    assert!(!status.success());
    assert!(
        err.contains("listeners[0].socket_options[0].buf_value: not supported"),
        "{err}"
    );
}
