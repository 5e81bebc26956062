//! A `tollgate run` child process, for the tests of the binary as users start it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `tollgate run` and the lines it has logged so far.
pub struct Running {
    pub child: Child,
    log: Arc<Mutex<String>>,
}

impl Running {
    pub fn start(cwd: &Path, args: &[&str]) -> (Self, String) {
        Self::start_with(cwd, args, &[])
    }

    /// As [`Running::start`], with these environment variables set.
    pub fn start_with(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> (Self, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .current_dir(cwd)
            .arg("run")
            .args(["--admin", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "debug")
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let reader = BufReader::new(child.stderr.take().unwrap());
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let running = Running { child, log };
        let line = running.wait_for("listening on ");
        // The address ends the text line, or the JSON line's message string.
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split(['"', ' ']).next())
            .unwrap()
            .trim()
            .to_owned();
        (running, addr)
    }

    pub fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(line) = self
                .log
                .lock()
                .unwrap()
                .lines()
                .find(|l| l.contains(needle))
            {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "never logged `{needle}`:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        (status, self.log())
    }

    /// SIGKILL: no chance to drain or flush. The process, to wait for.
    pub fn kill(mut self) -> Child {
        let status = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}
