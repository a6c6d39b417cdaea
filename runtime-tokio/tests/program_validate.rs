//! `revtun --mode validate` on the examples and on a broken file; `revtun demo`.

mod program;

use std::time::{Duration, Instant};

use program::{run, run_in, temp_dir};

/// Every example validates, run from a directory that has the TLS examples' certificates at
/// `examples/certs/` (relative paths resolve against the current directory).
#[test]
fn every_example_validates() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let cwd = temp_dir("examples-cwd");
    revtun_tests::certs::write_example_certs(&cwd.join("examples/certs"));
    let mut seen = 0;
    for entry in std::fs::read_dir(examples).expect("examples/") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        seen += 1;
        let path = path.to_str().expect("utf-8 path");
        let args = ["--mode", "validate", "-c", path];
        let out = run_in(&cwd, &args, Duration::from_secs(10));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{path}: {stdout}");
        assert!(
            stdout.starts_with(path) && stdout.contains(": OK, "),
            "{stdout}"
        );
    }
    let _ = std::fs::remove_dir_all(cwd);
    assert!(seen >= 5, "examples found: {seen}");
}

/// Without its certificate files a TLS example fails validation, naming the field and the file.
#[test]
fn tls_example_without_certificates_fails_validation() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/tls-upstream.yaml");
    let cwd = temp_dir("no-certs");
    let out = run_in(
        &cwd,
        &["--mode", "validate", "-c", example],
        Duration::from_secs(10),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let _ = std::fs::remove_dir_all(cwd);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("listener 'tls_handshake_listener': filter_chains[0].transport_socket"),
        "{stdout}"
    );
    assert!(stdout.contains("examples/certs/upstream.crt"), "{stdout}");
}

#[test]
fn broken_file_prints_every_error_and_fails() {
    let dir = temp_dir("validate");
    let file = dir.join("broken.yaml");
    std::fs::write(
        &file,
        r#"
static_resources:
  listeners:
  - name: reverse_listener
    address:
      socket_address: { address: "rc://node-1:edge:tenant-a@upstream:0", port_value: 0 }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tcp
          cluster: local-service
"#,
    )
    .expect("write");
    let out = run(
        &["--mode", "validate", "-c", file.to_str().expect("path")],
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "static_resources.listeners[0].address.socket_address.address: \
         Connection count 0 is outside the supported range [1, 1024]\n\
         static_resources.listeners[0].address.socket_address.address: \
         an rc:// listener requires the downstream reverse tunnel bootstrap extension \
         'envoy.bootstrap.reverse_tunnel.downstream_socket_interface' to be configured. \
         Please add it to bootstrap_extensions in your bootstrap configuration.\n\
         static_resources.listeners[0].filter_chains[0].filters[0].typed_config.cluster: \
         cluster 'local-service' is not defined in static_resources.clusters\n"
    );

    let missing = dir.join("missing.yaml");
    let missing = missing.to_str().expect("path");
    let out = run(
        &["--mode", "validate", "-c", missing],
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(missing), "names the file: {stdout}");

    let out = run(&["-c", missing], Duration::from_secs(10));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(missing));
    let _ = std::fs::remove_dir_all(dir);
}

/// What the config model accepts but the program cannot run yet fails validation too (not only at start).
#[test]
fn unsupported_features_fail_validation() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let text = std::fs::read_to_string(format!("{examples}/multiple-clusters-downstream.yaml"))
        .expect("example");
    let one_name = "                address: \"localhost\"\n                port_value: 8082\n";
    assert!(
        text.contains(one_name),
        "the example changed shape; adjust this test"
    );
    let two_names = format!(
        "{one_name}        - endpoint:\n            address:\n              socket_address:\n\
         {}",
        one_name.replace("8082", "8083")
    );
    let text = text.replacen(one_name, &two_names, 1);
    let dir = temp_dir("unsupported");
    let file = dir.join("two-names.yaml");
    std::fs::write(&file, &text).expect("write");
    let out = run(
        &["--mode", "validate", "-c", file.to_str().expect("path")],
        Duration::from_secs(10),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let _ = std::fs::remove_dir_all(dir);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("a STRICT_DNS cluster with more than one named endpoint"),
        "{stdout}"
    );
}

#[test]
fn demo_exits_zero_quickly() {
    let started = Instant::now();
    let out = run(&["demo"], Duration::from_secs(10));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("tunnels up"), "{stdout}");
    assert_eq!(stdout.matches("200 OK").count(), 4, "{stdout}");
    assert!(
        stdout.contains("reverse_connections.claims.handed_out: 4"),
        "{stdout}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}
