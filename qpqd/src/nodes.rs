//! The server's nodes: the address list a profile stores (`a:7443,b:7443`,
//! or one name that resolves to several addresses), checked when it is
//! given, and expanded into the addresses a connection tries in turn.
//!
//! The list is kept as the text the user gave (the `server` column of the
//! account), so a profile from before several nodes — one `host:port` —
//! is a list of one, and no state schema step is needed.

use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodesError {
    #[error("server `{0}`: expected HOST:PORT (several separated by commas)")]
    Malformed(String),
    #[error("no server address given: expected HOST:PORT (several separated by commas)")]
    Empty,
}

/// One address as given: `host:port`, the host a name or an IP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// As given, for status and logs.
    pub given: String,
    host: String,
    port: u16,
}

/// The nodes of `list` in the order given, duplicates dropped.
pub fn parse(list: &str) -> Result<Vec<Node>, NodesError> {
    let mut nodes: Vec<Node> = Vec::new();
    for given in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let node = parse_one(given).ok_or_else(|| NodesError::Malformed(given.to_owned()))?;
        if !nodes.contains(&node) {
            nodes.push(node);
        }
    }
    if nodes.is_empty() {
        return Err(NodesError::Empty);
    }
    Ok(nodes)
}

fn parse_one(given: &str) -> Option<Node> {
    let (host, port) = if let Some(rest) = given.strip_prefix('[') {
        let (host, port) = rest.split_once("]:")?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        (host, port)
    } else {
        let (host, port) = given.rsplit_once(':')?;
        // A bare IPv6 address is ambiguous: its port needs the brackets.
        if host.contains(':') {
            return None;
        }
        (host, port)
    };
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    if host.is_empty() || host.chars().any(char::is_whitespace) {
        return None;
    }
    Some(Node {
        given: given.to_owned(),
        host: host.to_owned(),
        port,
    })
}

impl Node {
    /// The name the server's certificate must carry. Self-signed
    /// certificates name localhost and pinning checks the certificate
    /// itself; under CA verification an IP address is checked as one (the
    /// certificate must list it).
    pub fn server_name(&self, use_ca: bool) -> String {
        if self.ip().is_some() && !use_ca {
            "localhost".to_owned()
        } else {
            self.host.clone()
        }
    }

    fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// Every address the node's name resolves to now (an IP address is
    /// its own), or why there are none.
    pub async fn resolve(&self) -> Result<Vec<Candidate>, String> {
        if let Some(ip) = self.ip() {
            return Ok(vec![Candidate {
                addr: SocketAddr::new(ip, self.port),
                label: self.given.clone(),
                server_name: String::new(),
            }]);
        }
        let addrs = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("{}: cannot resolve: {e}", self.given))?;
        let mut out: Vec<Candidate> = Vec::new();
        for addr in addrs {
            if !out.iter().any(|c| c.addr == addr) {
                out.push(Candidate {
                    addr,
                    label: format!("{} ({addr})", self.given),
                    server_name: String::new(),
                });
            }
        }
        if out.is_empty() {
            return Err(format!("{}: the name has no address", self.given));
        }
        Ok(out)
    }
}

/// One address to connect to: a node's, or one of the several its name
/// resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub addr: SocketAddr,
    /// For status and logs: the node as given, and the address when it was
    /// a name.
    pub label: String,
    /// The name its certificate must carry ([`Node::server_name`]).
    pub server_name: String,
}

/// Every address of `nodes`, in order (each name's addresses in the order
/// the resolver gave), with why the nodes that have none have none.
pub async fn candidates(nodes: &[Node], use_ca: bool) -> (Vec<Candidate>, Vec<String>) {
    let mut out: Vec<Candidate> = Vec::new();
    let mut failures = Vec::new();
    for node in nodes {
        match node.resolve().await {
            Ok(found) => {
                for mut c in found {
                    if !out.iter().any(|o| o.addr == c.addr) {
                        c.server_name = node.server_name(use_ca);
                        out.push(c);
                    }
                }
            }
            Err(why) => failures.push(why),
        }
    }
    (out, failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_is_a_list_of_one() {
        let nodes = parse("127.0.0.1:7443").unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].given, "127.0.0.1:7443");
        assert_eq!(nodes[0].server_name(false), "localhost");
        assert_eq!(nodes[0].server_name(true), "127.0.0.1");
    }

    #[test]
    fn several_addresses_keep_their_order_and_lose_duplicates() {
        let nodes = parse(" a.example:7443, [::1]:7444 ,a.example:7443,,b.example:1").unwrap();
        let given: Vec<&str> = nodes.iter().map(|n| n.given.as_str()).collect();
        assert_eq!(given, ["a.example:7443", "[::1]:7444", "b.example:1"]);
        assert_eq!(nodes[0].server_name(false), "a.example");
        assert_eq!(nodes[1].server_name(false), "localhost");
    }

    #[test]
    fn malformed_addresses_are_named() {
        for bad in [
            "a.example",
            "a.example:",
            "a.example:0",
            "a.example:70000",
            ":7443",
            "::1:7443",
            "[::1]7443",
            "[nonsense]:7443",
            "a b:7443",
        ] {
            let e = parse(&format!("ok.example:1,{bad}")).unwrap_err();
            assert_eq!(e, NodesError::Malformed(bad.to_owned()), "{bad}");
            assert!(e.to_string().contains(bad), "{e}");
        }
        assert_eq!(parse(" , ").unwrap_err(), NodesError::Empty);
    }

    #[tokio::test]
    async fn a_name_becomes_each_address_it_resolves_to() {
        let nodes = parse("localhost:7443,127.0.0.1:7444").unwrap();
        let (found, failures) = candidates(&nodes, false).await;
        assert!(failures.is_empty(), "{failures:?}");
        assert!(found.iter().any(|c| c.addr.port() == 7443
            && c.addr.ip().is_loopback()
            && c.label.starts_with("localhost:7443 (")
            && c.server_name == "localhost"));
        assert_eq!(found.last().unwrap().label, "127.0.0.1:7444");
    }
}
