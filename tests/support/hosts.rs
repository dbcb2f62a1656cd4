//! Test-owned Docker hosts: a real multi-node Swarm on this one machine.
//!
//! Why: muster on Swarm must be tested against Swarm itself (scheduling, task
//! states, overlay networks, `docker stack rm`), and a machine has only one
//! engine, which other tests and users share and which must never be
//! reconfigured. So each test binary starts its own `dockerd` nodes, each in
//! its own network namespace (`nsenter --net`, not `ip netns exec`, which
//! remounts /sys and hides the cgroup mounts), its own UTS namespace (so the
//! nodes have their own hostnames and `docker node ls` tells them apart), its
//! own `--config-file` (the host's daemon.json sets a data-root and storage
//! driver), `vfs` storage, and data/exec roots under a temp directory. A bridge
//! on the host joins them; the host engine's FORWARD policy is DROP, so an
//! ACCEPT rule for that bridge is inserted (and removed again). Test images are
//! loaded into every node from the host engine (`docker save | docker load`).
//! See /work/shared/TEST-HOSTS.md for the recipe this follows.
//!
//! Everything is named after the test process id (`mswarm<pid>…`, bridge
//! `msw<pid>b`, directory `/tmp/mswarm-<pid>`), so a run that was killed is
//! cleaned up by the next one ([`cleanup_stale`]: only names whose pid is no
//! longer alive). [`SwarmCluster`]'s `Drop` tears everything down: containers on
//! the nodes, swarm leave, dockerd killed through its pidfile, leftover
//! container shims of that node, mounts under the node's directory, netns,
//! bridge, FORWARD rule. The host engine's own containers are never touched.
//!
//! The cluster is shared by the tests of one binary ([`shared`]): the first
//! test starts it, later ones reuse it while any test holds it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::{Duration, Instant};

/// The images every node gets (built on the host by scripts/build-test-images.sh).
pub const NODE_IMAGES: [&str; 3] = [
    "muster-test/redis:1",
    "muster-test/nats:1",
    "muster-test/busybox:1",
];

/// One dockerd of the test swarm.
pub struct Node {
    /// Its hostname (own UTS namespace), as `docker node ls` shows it.
    pub hostname: String,
    /// `ip netns` name.
    pub netns: String,
    /// Its address on the test bridge.
    pub ip: String,
    /// Its data, exec root, socket, pidfile and log.
    pub dir: PathBuf,
    /// The `sh -c` script that starts its dockerd (for [`Node::restart_daemon`]).
    script: String,
    child: Mutex<Option<Child>>,
}

impl Node {
    /// `unix:///…/docker.sock`, for `DOCKER_HOST` or `docker -H`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.join("docker.sock").display())
    }

    /// `docker -H <this node>` with `args`.
    pub fn docker(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker");
        cmd.arg("-H").arg(self.host()).args(args);
        cmd.env_remove("DOCKER_CONTEXT");
        cmd
    }

    /// Runs `docker -H <node> args`, asserting success; returns trimmed stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args).output().expect("run docker");
        assert!(
            out.status.success(),
            "docker -H {} {args:?} failed: {}",
            self.host(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The node's dockerd pid, from its pidfile.
    pub fn daemon_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("docker.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }
}

/// N dockerd nodes in one swarm: node 0 is the manager, the rest workers.
pub struct SwarmCluster {
    pub nodes: Vec<Node>,
    /// How long [`SwarmCluster::start`] took (namespaces, daemons, swarm, images).
    pub setup: Duration,
    bridge: String,
    dir: PathBuf,
    forward_rule: bool,
}

/// The cluster the tests of this binary share while any of them holds it.
pub fn shared() -> Arc<SwarmCluster> {
    static SHARED: Mutex<Weak<SwarmCluster>> = Mutex::new(Weak::new());
    let mut slot = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(cluster) = slot.upgrade() {
        return cluster;
    }
    let cluster = Arc::new(SwarmCluster::start(3));
    *slot = Arc::downgrade(&cluster);
    cluster
}

/// Who may use the shared cluster now: every test holds [`hold`] while it
/// runs; a test that takes a node down holds [`hold_exclusive`], so no other
/// test sees two nodes where it expects three.
static ACCESS: RwLock<()> = RwLock::new(());

/// Shared use of the cluster (hold it for the whole test).
pub fn hold() -> RwLockReadGuard<'static, ()> {
    ACCESS.read().unwrap_or_else(|p| p.into_inner())
}

/// Sole use of the cluster, for a test that disturbs its nodes.
pub fn hold_exclusive() -> RwLockWriteGuard<'static, ()> {
    ACCESS.write().unwrap_or_else(|p| p.into_inner())
}

fn run(cmd: &str, args: &[&str]) -> std::process::Output {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {cmd}: {e} (bash scripts/setup.sh installs it)"))
}

fn run_ok(cmd: &str, args: &[&str]) {
    let out = run(cmd, args);
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

impl SwarmCluster {
    /// The manager node (where `muster up --swarm` points DOCKER_HOST).
    pub fn manager(&self) -> &Node {
        &self.nodes[0]
    }

    /// Starts `n` nodes, makes node 0 the manager, joins the rest as workers,
    /// and loads [`NODE_IMAGES`] into each.
    pub fn start(n: usize) -> SwarmCluster {
        let started = Instant::now();
        let mut cluster = SwarmCluster::boot(n, &NODE_IMAGES);
        let manager = &cluster.nodes[0];
        manager.docker_ok(&[
            "swarm",
            "init",
            "--advertise-addr",
            &manager.ip,
            "--default-addr-pool",
            "10.212.0.0/16",
        ]);
        let token = manager.docker_ok(&["swarm", "join-token", "-q", "worker"]);
        let join = format!("{}:2377", manager.ip);
        for node in &cluster.nodes[1..] {
            node.docker_ok(&["swarm", "join", "--token", &token, &join]);
        }
        wait_for_nodes_ready(manager, n);
        cluster.setup = started.elapsed();
        eprintln!(
            "swarm test cluster: {n} nodes ready in {:.1}s",
            cluster.setup.as_secs_f64()
        );
        cluster
    }

    /// One plain dockerd (no swarm) in its own namespaces, with `images`
    /// loaded: an engine a test may stop and start again (the fault suite's
    /// engine restart) without touching the machine's own.
    pub fn standalone(images: &[&str]) -> SwarmCluster {
        let started = Instant::now();
        let mut cluster = SwarmCluster::boot(1, images);
        cluster.setup = started.elapsed();
        cluster
    }

    /// The bridge, `n` nodes with their daemons answering, `images` loaded.
    fn boot(n: usize, images: &[&str]) -> SwarmCluster {
        super::ensure_test_images();
        cleanup_stale();
        let pid = std::process::id();
        let subnet = format!("10.{}.{}", 213 + (pid >> 8) % 40, pid & 0xff);
        let dir = PathBuf::from(format!("/tmp/mswarm-{pid}"));
        std::fs::create_dir_all(&dir).expect("create the swarm test directory");
        let bridge = format!("msw{pid}b");
        let mut cluster = SwarmCluster {
            nodes: Vec::new(),
            setup: Duration::ZERO,
            bridge: bridge.clone(),
            dir: dir.clone(),
            forward_rule: false,
        };
        run_ok("ip", &["link", "add", &bridge, "type", "bridge"]);
        run_ok(
            "ip",
            &["addr", "add", &format!("{subnet}.1/24"), "dev", &bridge],
        );
        run_ok("ip", &["link", "set", &bridge, "up"]);
        run_ok(
            "iptables",
            &[
                "-I", "FORWARD", "-i", &bridge, "-o", &bridge, "-j", "ACCEPT",
            ],
        );
        cluster.forward_rule = true;
        for i in 1..=n {
            let node = start_node(pid, i, &subnet, &bridge, &dir);
            cluster.nodes.push(node);
        }
        for node in &cluster.nodes {
            wait_for_daemon(node);
        }
        load_images(&cluster.nodes, &dir, images);
        cluster
    }
}

fn start_node(pid: u32, i: usize, subnet: &str, bridge: &str, dir: &Path) -> Node {
    let netns = format!("mswarm{pid}n{i}");
    let host_end = format!("msw{pid}h{i}");
    let node_end = format!("msw{pid}c{i}");
    let ip = format!("{subnet}.{}", 10 + i);
    run_ok("ip", &["netns", "add", &netns]);
    run_ok(
        "ip",
        &[
            "link", "add", &host_end, "type", "veth", "peer", "name", &node_end,
        ],
    );
    run_ok("ip", &["link", "set", &host_end, "master", bridge]);
    run_ok("ip", &["link", "set", &host_end, "up"]);
    run_ok("ip", &["link", "set", &node_end, "netns", &netns]);
    run_ok(
        "ip",
        &[
            "-n",
            &netns,
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            &node_end,
        ],
    );
    run_ok("ip", &["-n", &netns, "link", "set", &node_end, "up"]);
    run_ok("ip", &["-n", &netns, "link", "set", "lo", "up"]);
    let node_dir = dir.join(format!("n{i}"));
    std::fs::create_dir_all(node_dir.join("data")).expect("create node data dir");
    std::fs::create_dir_all(node_dir.join("exec")).expect("create node exec dir");
    std::fs::write(node_dir.join("daemon.json"), "{}").expect("write node daemon.json");
    let hostname = format!("mswarm{pid}-node{i}");
    let d = node_dir.display();
    let script = format!(
        "hostname {hostname} && exec dockerd --config-file {d}/daemon.json \
         --data-root {d}/data --exec-root {d}/exec --pidfile {d}/docker.pid \
         -H unix://{d}/docker.sock --storage-driver vfs --bridge none \
         --iptables=false --ip-masq=false --label muster.test.swarm={pid}"
    );
    let node = Node {
        hostname,
        netns,
        ip,
        dir: node_dir,
        script,
        child: Mutex::new(None),
    };
    node.spawn_daemon();
    node
}

impl Node {
    /// Starts the node's dockerd in its network namespace, under a UTS
    /// namespace of its own with the node's hostname.
    fn spawn_daemon(&self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("dockerd.log"))
            .expect("open dockerd log");
        let child = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{}", self.netns))
            .args(["unshare", "--uts", "sh", "-c", &self.script])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("start dockerd (nsenter, unshare: util-linux)");
        *self.child.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
    }

    /// Kills the node's dockerd at once (SIGKILL), as a lost node: its
    /// containers keep running, the manager stops hearing from it.
    pub fn kill_daemon(&self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the node's dockerd as an operator or an upgrade does (SIGTERM)
    /// and waits until it has exited. Without `live-restore` (these nodes
    /// run without it) the daemon stops its containers on the way out.
    pub fn stop_daemon(&self) {
        let Some(pid) = self.daemon_pid() else {
            return;
        };
        let _ = run("kill", &["-TERM", &pid.to_string()]);
        // The daemon is our child (nsenter, unshare and sh exec it): reap it,
        // or its pid stays a zombie in /proc.
        match self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(mut child) => {
                let _ = child.wait();
            }
            None => {
                let deadline = Instant::now() + Duration::from_secs(60);
                while pid_alive(pid) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    /// Starts the node's dockerd again (same data root: it rejoins the swarm)
    /// and waits until it answers.
    pub fn restart_daemon(&self) {
        self.spawn_daemon();
        wait_for_daemon(self);
    }
}

fn wait_for_daemon(node: &Node) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let ok = node
            .docker(&["info", "--format", "{{.ID}}"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(node.dir.join("dockerd.log")).unwrap_or_default();
    panic!(
        "dockerd of {} did not answer within 60s; its log:\n{log}",
        node.hostname
    );
}

/// Waits until `n` nodes are `Ready` in the manager's `docker node ls`.
pub fn wait_for_nodes_ready(manager: &Node, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = manager
            .docker_ok(&["node", "ls", "--format", "{{.Status}}"])
            .lines()
            .filter(|l| *l == "Ready")
            .count();
        if ready == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {ready} of {n} swarm nodes are Ready after 60s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `docker save` the test images once from the host engine, `docker load`
/// them into every node (in parallel).
fn load_images(nodes: &[Node], dir: &Path, images: &[&str]) {
    let tar = dir.join("images.tar");
    let tar_s = tar.to_string_lossy().to_string();
    let mut args = vec!["save", "-o", tar_s.as_str()];
    args.extend(images);
    run_ok("docker", &args);
    std::thread::scope(|s| {
        for node in nodes {
            let tar_s = tar_s.clone();
            s.spawn(move || node.docker_ok(&["load", "-q", "-i", &tar_s]));
        }
    });
    let _ = std::fs::remove_file(tar);
}

impl Drop for SwarmCluster {
    fn drop(&mut self) {
        for node in &self.nodes {
            // Containers first: their shims outlive a killed dockerd.
            if let Ok(out) = node.docker(&["ps", "-aq"]).output() {
                let ids = String::from_utf8_lossy(&out.stdout).to_string();
                let ids: Vec<&str> = ids.split_whitespace().collect();
                if !ids.is_empty() {
                    let mut args = vec!["rm", "-f", "-v"];
                    args.extend(ids);
                    let _ = node.docker(&args).output();
                }
            }
        }
        for node in self.nodes.iter().rev() {
            let _ = node.docker(&["swarm", "leave", "--force"]).output();
        }
        teardown_nodes(&mut self.nodes);
        let _ = run("ip", &["link", "del", &self.bridge]);
        if self.forward_rule {
            let b = &self.bridge;
            let _ = run(
                "iptables",
                &["-D", "FORWARD", "-i", b, "-o", b, "-j", "ACCEPT"],
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Stops the nodes' daemons together (SIGTERM, then SIGKILL after 3 s: a
/// worker whose manager is gone hangs in shutdown), then what they leave:
/// their containerd and shims, mounts, netns.
fn teardown_nodes(nodes: &mut [Node]) {
    let pids: Vec<u32> = nodes.iter().filter_map(Node::daemon_pid).collect();
    for pid in &pids {
        let _ = run("kill", &[&pid.to_string()]);
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while pids.iter().any(|p| pid_alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for pid in pids.iter().filter(|p| pid_alive(**p)) {
        let _ = run("kill", &["-9", &pid.to_string()]);
    }
    for node in nodes {
        node.kill_daemon();
        kill_node_processes(&node.dir);
        unmount_under(&node.dir);
        let _ = run("ip", &["netns", "del", &node.netns]);
    }
}

/// The containerd and container shims of a node's dockerd (their command
/// lines name the node's exec root); only ours, by pid.
fn kill_node_processes(node_dir: &Path) {
    let marker = node_dir.join("exec").to_string_lossy().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains("containerd") && cmdline.contains(&marker) {
            let _ = run("kill", &["-9", &pid.to_string()]);
        }
    }
}

/// Lazily unmounts everything mounted under `dir`, deepest first.
fn unmount_under(dir: &Path) {
    let prefix = format!("{}/", dir.display());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = run("umount", &["-l", p]);
    }
}

/// Removes what an earlier, killed test process left: its nodes (by pidfile),
/// containerd and shims, mounts, netns, bridge and FORWARD rule. Only names
/// whose pid is gone.
pub fn cleanup_stale() {
    let Ok(entries) = std::fs::read_dir("/tmp") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(pid) = name
            .strip_prefix("mswarm-")
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid_alive(pid) {
            continue;
        }
        let dir = entry.path();
        let mut nodes: Vec<Node> = (1..=9)
            .map(|i| Node {
                hostname: String::new(),
                netns: format!("mswarm{pid}n{i}"),
                ip: String::new(),
                dir: dir.join(format!("n{i}")),
                script: String::new(),
                child: Mutex::new(None),
            })
            .filter(|n| n.dir.exists())
            .collect();
        teardown_nodes(&mut nodes);
        let bridge = format!("msw{pid}b");
        let _ = run("ip", &["link", "del", &bridge]);
        let b = bridge.as_str();
        let _ = run(
            "iptables",
            &["-D", "FORWARD", "-i", b, "-o", b, "-j", "ACCEPT"],
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A stack on the test swarm, removed (services, networks, its prober
/// container) when dropped, also after a failed assertion.
///
/// muster must have an interface on the stack's overlay network to probe the
/// tasks: the manager node's own namespace has none (overlay networks live in
/// namespaces of their own). So, as muster runs in production (a container
/// attached to the stack's attachable network), the test creates the stack's
/// `<stack>_default` overlay itself (labelled as `docker stack deploy` does,
/// so `up --swarm` uses it and `docker stack rm` removes it), runs a small
/// container on the manager attached to it, and starts muster in that
/// container's network namespace ([`SwarmStack::muster`]). The Docker API is a
/// unix socket, which a network namespace does not hide.
pub struct SwarmStack {
    pub name: String,
    pub cluster: Arc<SwarmCluster>,
    prober: String,
    prober_pid: u32,
}

impl SwarmStack {
    pub fn new(cluster: Arc<SwarmCluster>, test: &str) -> SwarmStack {
        let name = format!("mt{}{test}", std::process::id());
        let manager = cluster.manager();
        manager.docker_ok(&[
            "network",
            "create",
            "-d",
            "overlay",
            "--attachable",
            "--label",
            &format!("com.docker.stack.namespace={name}"),
            &format!("{name}_default"),
        ]);
        let prober = format!("{name}-prober");
        manager.docker_ok(&[
            "run",
            "-d",
            "--name",
            &prober,
            "--network",
            &format!("{name}_default"),
            "--label",
            "muster.test.swarm=1",
            "muster-test/busybox:1",
            "sleep",
            "100000",
        ]);
        let pid = manager
            .docker_ok(&["inspect", "-f", "{{.State.Pid}}", &prober])
            .parse()
            .expect("prober pid");
        SwarmStack {
            name,
            cluster,
            prober,
            prober_pid: pid,
        }
    }

    /// `muster` in the prober's network namespace, DOCKER_HOST the manager.
    pub fn muster(&self) -> super::Muster {
        let net = format!("--net=/proc/{}/ns/net", self.prober_pid);
        let mut m = super::Muster::launched_by(&["nsenter", &net]);
        m.env("DOCKER_HOST", self.cluster.manager().host());
        m
    }

    /// Writes `yaml` as this stack's compose file; returns its path.
    pub fn compose_file(&self, yaml: &str) -> PathBuf {
        let path = self.cluster.dir.join(format!("{}.yaml", self.name));
        std::fs::write(&path, yaml).expect("write compose file");
        path
    }

    /// `muster -f <yaml> -p <stack> up --swarm <extra…>` to the end (the
    /// environment's DOCKER_HOST, the manager unless `docker_host` names another).
    pub fn up(&self, yaml: &str, docker_host: Option<&str>, extra: &[&str]) -> Output {
        let file = self.compose_file(yaml);
        let file = file.to_string_lossy();
        let mut muster = self.muster();
        if let Some(host) = docker_host {
            muster.env("DOCKER_HOST", host);
        }
        let mut args = vec!["-f", &file, "-p", &self.name, "up", "--swarm"];
        args.extend(extra);
        muster.run(&args)
    }

    /// `program args…` run in the prober's network namespace (on the
    /// stack's overlay), to the end.
    pub fn in_net(&self, program: &str, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net=/proc/{}/ns/net", self.prober_pid))
            .arg(program)
            .args(args)
            .output()
            .expect("nsenter")
    }

    /// `GET http://127.0.0.1:PORT{path}` in the prober's namespace, where a
    /// serving muster of this stack listens: (status, body), or `None` when
    /// nothing answers.
    pub fn http_get(&self, port: u16, path: &str) -> Option<(u16, String)> {
        let url = format!("http://127.0.0.1:{port}{path}");
        let out = self.in_net(
            "curl",
            &["-s", "-m", "5", "-w", "\n%{http_code}", url.as_str()],
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n')?;
        let code: u16 = code.trim().parse().ok()?;
        (code != 0).then(|| (code, body.to_string()))
    }

    /// `redis-cli -h ADDRESS ARGS…` against a task at its overlay address.
    pub fn redis_cli(&self, address: &str, args: &[&str]) -> String {
        let mut all = vec!["-h", address];
        all.extend(args);
        let out = self.in_net("redis-cli", &all);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The A records of `name` as Swarm's DNS answers them to a container
    /// on the stack's overlay (the prober: `busybox nslookup` against the
    /// engine's embedded resolver), e.g. `tasks.cache`: the addresses a real
    /// client resolving that name would use.
    pub fn resolve(&self, name: &str) -> Vec<String> {
        let out = self
            .cluster
            .manager()
            .docker(&["exec", &self.prober, "busybox", "nslookup", "-type=a", name])
            .output()
            .expect("docker exec nslookup");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut seen_name = false;
        let mut addresses = Vec::new();
        for line in text.lines() {
            if line.starts_with("Name:") {
                seen_name = true;
            } else if let (true, Some(a)) = (seen_name, line.strip_prefix("Address:")) {
                addresses.push(a.trim().to_string());
            }
        }
        addresses
    }

    /// `muster -f <yaml> -p <stack> up --swarm --serve --listen 127.0.0.1:PORT
    /// <extra…>`, spawned (stdout piped); the caller kills it.
    pub fn serve(&self, yaml: &str, port: u16, extra: &[&str]) -> Child {
        self.serve_with(self.muster(), yaml, port, extra)
    }

    /// [`SwarmStack::serve`] with a muster the caller prepared (its state
    /// file, say, shared with other musters of the test).
    pub fn serve_with(
        &self,
        mut muster: super::Muster,
        yaml: &str,
        port: u16,
        extra: &[&str],
    ) -> Child {
        let file = self.compose_file(yaml);
        let file = file.to_string_lossy();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["-f", &file, "-p", &self.name, "--listen", &listen];
        args.extend(["up", "--swarm", "--serve"]);
        args.extend(extra);
        muster
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn muster up --swarm --serve")
    }

    /// `docker service inspect -f FORMAT <stack>_<service>` on the manager.
    pub fn inspect(&self, service: &str, format: &str) -> String {
        let name = format!("{}_{service}", self.name);
        self.cluster
            .manager()
            .docker_ok(&["service", "inspect", "-f", format, &name])
    }

    /// The ids of this stack's services, by the stack label (empty: none).
    pub fn services(&self) -> String {
        let label = format!("label=com.docker.stack.namespace={}", self.name);
        self.cluster
            .manager()
            .docker_ok(&["service", "ls", "-q", "--filter", &label])
    }

    /// Removes the prober container (it holds the overlay network).
    pub fn remove_prober(&self) {
        let _ = self
            .cluster
            .manager()
            .docker(&["rm", "-f", &self.prober])
            .output();
    }
}

impl Drop for SwarmStack {
    fn drop(&mut self) {
        self.remove_prober();
        let _ = self
            .cluster
            .manager()
            .docker(&["stack", "rm", &self.name])
            .output();
    }
}
