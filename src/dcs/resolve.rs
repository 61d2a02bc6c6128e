//! Name resolution for the DCS clients without a thread per connection.
//!
//! ureq resolves every host on a freshly spawned thread when a request has a timeout
//! (so that the lookup can be abandoned). DCS endpoints are nearly always IP
//! literals, for which that thread (clone, mmap, munmap on every new connection) is
//! pure overhead on the idle path; [`LiteralResolver`] answers them directly and
//! leaves names to ureq's resolver.

use std::net::{IpAddr, SocketAddr};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

/// The socket address of a URI whose host is an IP literal.
pub fn literal_addr(uri: &Uri) -> Option<SocketAddr> {
    let host = uri.host()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: IpAddr = host.parse().ok()?;
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    Some(SocketAddr::new(ip, port))
}

#[derive(Debug, Default)]
pub struct LiteralResolver(DefaultResolver);

impl Resolver for LiteralResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        match literal_addr(uri) {
            Some(addr) => {
                let mut out = self.empty();
                out.push(addr);
                Ok(out)
            }
            None => self.0.resolve(uri, config, timeout),
        }
    }
}

/// An agent with ureq's connector and the [`LiteralResolver`].
pub fn agent(config: Config) -> ureq::Agent {
    ureq::Agent::with_parts(config, DefaultConnector::new(), LiteralResolver::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_resolve_without_lookup() {
        let addr = |s: &str| literal_addr(&s.parse::<Uri>().unwrap());
        assert_eq!(
            addr("http://192.0.2.1:2379/v3/kv/range"),
            Some("192.0.2.1:2379".parse().unwrap())
        );
        assert_eq!(
            addr("http://192.0.2.1/x"),
            Some("192.0.2.1:80".parse().unwrap())
        );
        assert_eq!(
            addr("https://192.0.2.1/x"),
            Some("192.0.2.1:443".parse().unwrap())
        );
        assert_eq!(
            addr("http://[2001:db8::1]:2379/"),
            Some("[2001:db8::1]:2379".parse().unwrap())
        );
        assert_eq!(addr("http://etcd.example:2379/"), None);
    }
}
