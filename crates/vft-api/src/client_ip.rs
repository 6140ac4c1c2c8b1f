//! Who sent a request, as far as the connection tells: the session's throttle, the bearer
//! token's throttle and the audit record all ask, so it is a module of its own.

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

/// The address of the client that sent a request (the peer of its connection; behind a
/// reverse proxy, the proxy). Unspecified when the server was not given connection info.
pub struct ClientIp(pub std::net::IpAddr);

impl ClientIp {
    pub(crate) fn from_parts(parts: &Parts) -> Self {
        ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<std::net::SocketAddr>>()
                .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |c| c.0.ip()),
        )
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_parts(parts))
    }
}
