//! Servers a test owns: Postgres, Redis and NATS (single, clustered, linked through proxies) on
//! free ports, so a test may kill them.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use crate::CutProxy;

/// A port nothing listens on now, for a server the test starts later.
///
/// It is drawn at random from below the kernel's ephemeral range, which `bind(0)` listeners and
/// outgoing connections take their ports from: a port from there could be taken by a parallel
/// test between this check and the server's own bind (one ops port once answered with another
/// test's gateway). Parallel test processes rarely draw the same port, and one process never
/// hands a port out twice.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (from, to) = (low.saturating_sub(20_000).max(1024), low);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1000 {
        let draw = uuid::Uuid::new_v4().as_u128() % u128::from(to.saturating_sub(from).max(1));
        let port = from + u16::try_from(draw).expect("below the range's width");
        if !given.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free port below {low}");
}

/// Waits until a server of the test's own accepts connections on `port`.
async fn wait_listening(port: u16, name: &str) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} did not listen on {port}");
}

/// Kills a server of the test's own (SIGKILL) and waits for it to exit.
fn kill_child(child: &mut Option<std::process::Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A PostgreSQL server of the test's own (a fresh cluster on a free port with a `clokio`
/// superuser and database, trust auth, no fsync), for tests that must stop it. Stopped when
/// dropped. Run as root, it runs the server as the `postgres` user, as PostgreSQL requires.
pub struct PgServer {
    pub port: u16,
    dir: std::path::PathBuf,
    bin: std::path::PathBuf,
}

impl PgServer {
    pub async fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's binaries in /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|b| b.join("initdb").exists())
            .expect("initdb");
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("clokio-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("data dir");
        let server = Self { port, dir, bin };
        server.as_owner(&["chown", "-R"]);
        let initdb = server.bin.join("initdb");
        let data = server.dir.join("data");
        server.run(&[
            initdb.to_str().unwrap(),
            "-D",
            data.to_str().unwrap(),
            "-U",
            "clokio",
            "--auth=trust",
            "-E",
            "UTF8",
        ]);
        server.restart().await;
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&format!(
            "postgres://clokio@127.0.0.1:{}/postgres",
            server.port
        ))
        .await
        .expect("own postgres reachable");
        sqlx::query("CREATE DATABASE clokio")
            .execute(&mut admin)
            .await
            .expect("database created");
        server
    }

    pub fn url(&self) -> String {
        format!("postgres://clokio@127.0.0.1:{}/clokio", self.port)
    }

    fn root() -> bool {
        std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0"))
    }

    /// `chown -R postgres: <dir>` when running as root (PostgreSQL refuses to run as root).
    fn as_owner(&self, chown: &[&str]) {
        if Self::root() {
            let status = std::process::Command::new(chown[0])
                .args(&chown[1..])
                .arg("postgres:postgres")
                .arg(&self.dir)
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the data dir");
        }
    }

    /// Runs a PostgreSQL program, as the `postgres` user when root.
    fn run(&self, args: &[&str]) {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn output(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = if Self::root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]);
            c.args(args);
            c
        } else {
            let mut c = std::process::Command::new(args[0]);
            c.args(&args[1..]);
            c
        };
        cmd.output().expect("a PostgreSQL program runs")
    }

    fn pg_ctl_args(&self, action: &[&str]) -> Vec<String> {
        let pg_ctl = self.bin.join("pg_ctl");
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let mut args: Vec<String> = vec![
            pg_ctl.display().to_string(),
            "-D".into(),
            data.display().to_string(),
            "-l".into(),
            log.display().to_string(),
            "-o".into(),
            options,
            "-w".into(),
        ];
        args.extend(action.iter().map(|a| a.to_string()));
        args
    }

    fn pg_ctl(&self, action: &[&str]) {
        let args = self.pg_ctl_args(action);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&args);
    }

    /// Starts the server (again) on the same port and data, and waits until it accepts.
    pub async fn restart(&self) {
        self.pg_ctl(&["start"]);
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m immediate`: no checkpoint).
    pub fn kill(&self) {
        self.pg_ctl(&["-m", "immediate", "stop"]);
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let args = self.pg_ctl_args(&["-m", "immediate", "stop"]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let _ = self.output(&args);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A redis-server of the test's own (a free port, nothing kept on disk), for tests that must
/// stop it. Killed when dropped.
pub struct RedisServer {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl RedisServer {
    pub async fn start() -> Self {
        let port = free_port();
        let mut server = Self { port, child: None };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port, and waits until it accepts.
    pub async fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        wait_listening(self.port, "redis-server").await;
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        kill_child(&mut self.child);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A nats-server of the test's own (JetStream on, a free port, a temporary store), for tests that
/// must stop the server. Killed when dropped.
pub struct NatsServer {
    pub port: u16,
    dir: std::path::PathBuf,
    /// Cluster options, for a node of a [`NatsCluster`].
    cluster: Vec<String>,
    /// Off for a node that only routes (the edge of [`LinkedNats`]).
    jetstream: bool,
    child: Option<std::process::Child>,
}

impl NatsServer {
    pub async fn start() -> Self {
        let mut server = Self::new(Vec::new());
        server.restart().await;
        server
    }

    fn new(cluster: Vec<String>) -> Self {
        Self {
            port: free_port(),
            dir: std::env::temp_dir()
                .join(format!("clokio-nats-{}", uuid::Uuid::new_v4().simple())),
            cluster,
            jetstream: true,
            child: None,
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and store, and waits until it accepts.
    pub async fn restart(&mut self) {
        let bin = [
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
            "/usr/local/bin/nats-server",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("nats-server");
        let child = std::process::Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(&self.dir)
            .args(self.jetstream.then_some("-js"))
            .args(&self.cluster)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        wait_listening(self.port, "nats-server").await;
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        kill_child(&mut self.child);
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A NATS cluster of the test's own, as production runs it: `n` nodes on free ports, routed to
/// each other, JetStream on each with its own store. Killed when dropped.
pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    pub async fn start(n: usize) -> Self {
        let route_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let name = format!("clokio-test-{}", uuid::Uuid::new_v4().simple());
        let mut nodes: Vec<NatsServer> = route_ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                NatsServer::new(cluster_node(
                    &format!("n{}", i + 1),
                    &name,
                    *port,
                    &route_ports,
                ))
            })
            .collect();
        for node in &mut nodes {
            node.restart().await;
        }
        let cluster = Self { nodes };
        cluster.wait_jetstream().await;
        cluster
    }

    /// Every node's URL, comma-separated: a `CLOKIO_NATS_URL` for the whole cluster.
    pub fn url(&self) -> String {
        urls(&self.nodes)
    }

    /// Waits until the cluster can hold a stream with a copy on every node: its JetStream meta
    /// group has a leader and every node has joined it.
    pub async fn wait_jetstream(&self) {
        wait_jetstream(&self.url(), self.nodes.len()).await;
    }
}

/// The options of a cluster node named `server` in cluster `cluster`, taking routes on `port` and
/// routing to `routes` (itself among them or not: a node skips its own).
fn cluster_node(server: &str, cluster: &str, port: u16, routes: &[u16]) -> Vec<String> {
    let routes = routes
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    vec![
        "--server_name".to_owned(),
        server.to_owned(),
        "--cluster_name".to_owned(),
        cluster.to_owned(),
        "--cluster".to_owned(),
        format!("nats://127.0.0.1:{port}"),
        "--routes".to_owned(),
        routes,
    ]
}

/// The servers' URLs, comma-separated: a `CLOKIO_NATS_URL` for all of them.
fn urls(servers: &[NatsServer]) -> String {
    servers
        .iter()
        .map(NatsServer::url)
        .collect::<Vec<_>>()
        .join(",")
}

/// Waits until the NATS servers at `url` can hold a stream of `replicas` copies.
async fn wait_jetstream(url: &str, replicas: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let client = async_nats::connect(clokio_runtime::config::nats_servers(url).expect("node URLs"))
        .await
        .expect("a node accepts");
    let js = async_nats::jetstream::new(client);
    let name = format!("CLOKIO-PROBE-{}", uuid::Uuid::new_v4().simple());
    loop {
        let created = js
            .create_stream(async_nats::jetstream::stream::Config {
                name: name.clone(),
                subjects: vec![format!("probe.{name}")],
                storage: async_nats::jetstream::stream::StorageType::Memory,
                num_replicas: replicas,
                ..Default::default()
            })
            .await;
        match created {
            Ok(_) => break,
            Err(err) => assert!(
                std::time::Instant::now() < deadline,
                "the cluster's JetStream did not come up: {err}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = js.delete_stream(&name).await;
}

/// A NATS cluster of the test's own whose third node is reached only through proxies the test can
/// hold down: two `hubs` run JetStream (the services connect to them), the `edge` only routes.
/// While the links are down a client of the edge keeps its connection but gets nothing published
/// at the hubs, as a client of one cluster node does while its routes flap.
pub struct LinkedNats {
    pub hubs: Vec<NatsServer>,
    pub edge: NatsServer,
    links: Vec<CutProxy>,
    /// The edge's monitoring port (`/routez`).
    edge_monitor: u16,
}

impl LinkedNats {
    pub async fn start() -> Self {
        let hub_routes = [free_port(), free_port()];
        let edge_monitor = free_port();
        let mut links = Vec::new();
        for port in hub_routes {
            links.push(CutProxy::start(SocketAddr::from(([127, 0, 0, 1], port))).await);
        }
        let name = format!("clokio-test-{}", uuid::Uuid::new_v4().simple());
        let mut hubs: Vec<NatsServer> = hub_routes
            .iter()
            .enumerate()
            .map(|(i, port)| {
                NatsServer::new(cluster_node(
                    &format!("hub{}", i + 1),
                    &name,
                    *port,
                    &hub_routes,
                ))
            })
            .collect();
        let link_ports: Vec<u16> = links.iter().map(|l| l.port).collect();
        let mut edge_args = cluster_node("edge", &name, free_port(), &link_ports);
        edge_args.extend([
            // Told to nobody reachable, so no hub routes to the edge around the proxies.
            "--cluster_advertise".to_owned(),
            "127.0.0.1:1".to_owned(),
            "-m".to_owned(),
            edge_monitor.to_string(),
        ]);
        let mut edge = NatsServer::new(edge_args);
        edge.jetstream = false;
        for hub in &mut hubs {
            hub.restart().await;
        }
        edge.restart().await;
        let cluster = Self {
            hubs,
            edge,
            links,
            edge_monitor,
        };
        cluster.wait_routes(2).await;
        wait_jetstream(&cluster.edge.url(), 1).await;
        cluster
    }

    /// The hubs' URLs, comma-separated.
    pub fn hub_url(&self) -> String {
        urls(&self.hubs)
    }

    /// Takes the edge's links down (`false`) or brings them back (`true`), and waits until the
    /// edge says its routes to the hubs are gone or back.
    pub async fn links(&self, up: bool) {
        for link in &self.links {
            link.hold_down(!up);
        }
        self.wait_routes(if up { self.hubs.len() } else { 0 }).await;
    }

    async fn wait_routes(&self, n: usize) {
        let url = format!("http://127.0.0.1:{}/routez", self.edge_monitor);
        let http = reqwest::Client::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let routes = match http.get(&url).send().await {
                Ok(res) => res.json::<Value>().await.ok(),
                Err(_) => None,
            }
            .and_then(|v| v["num_routes"].as_u64());
            if routes == Some(n as u64) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the edge's routes did not become {n} (last seen {routes:?})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
