//! Nothing a test starts outlives it: every process goes through `Spawned`, which stops its
//! whole process group. (`.ci/test` also fails when any process marked by the test run is still
//! running after it.)

use std::time::Duration;

use crate::helpers::*;

/// The processes whose environment holds `variable=value`.
fn carrying(variable: &str, value: &str) -> Vec<u32> {
    let needle = format!("{variable}={value}");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|b| *b == 0).any(|v| v == needle.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

#[tokio::test]
async fn a_gateway_under_faketime_is_stopped_with_its_wrapper() {
    let port = free_port();
    let (_dir, config) = binary_config_file(port, "");
    let probe = uuid::Uuid::new_v4().to_string();
    // faketime runs the gateway in a child process of its own: killing the wrapper alone would
    // leave the gateway running.
    let wrapper = Spawned::start(
        std::process::Command::new("faketime")
            .args([
                "-f",
                "+0s",
                env!("CARGO_BIN_EXE_clients-gateway"),
                "--config",
            ])
            .arg(&config)
            .env("LEFTOVER_PROBE", &probe)
            .stdout(std::process::Stdio::null()),
    )
    .expect("faketime is needed: run `bash .ci/install-tools`");
    assert!(listens_within(port, Duration::from_secs(10)).await);
    let running = carrying("LEFTOVER_PROBE", &probe);
    assert!(
        running.len() >= 2,
        "the wrapper and the gateway run: {running:?}"
    );
    drop(wrapper);
    // SIGKILL is delivered at once; a process takes a moment to close its sockets and exit.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = carrying("LEFTOVER_PROBE", &probe);
        let listening = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok();
        if left.is_empty() && !listening {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "left running: {left:?}, listening: {listening}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
