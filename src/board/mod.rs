//! The call board (DESIGN §13): one page that `switchboard serve` answers on
//! the gRPC port's plain HTTP `GET /`, so it shares the origin of gRPC-Web
//! (no CORS setup) and needs no build step from users. The page follows the
//! calls with gRPC-Web `Subscribe` like any other client: it holds no data of
//! its own and goes through the same authentication.
//!
//! The assets are embedded in the binary ([`assets`]). Their sources are
//! under `clients/web/board/`: the page and style sheet are embedded from
//! there; `clients/build.sh` bundles the script into `src/board/assets/`
//! (committed), and `scripts/test` checks that the committed bundle matches
//! a fresh build.
//!
//! [`BoardLayer`] answers the board's `GET`s before gRPC-Web sees them
//! (tonic-web refuses any other HTTP/1.1 request) and passes everything else
//! through untouched.

mod assets;

use std::task::{Context, Poll};

use futures_util::future::{Either, Ready, ready};
use http::{Request, Response};
use tonic::body::Body;
use tower::{Layer, Service};

/// Serves the board's page and assets in front of the gRPC routes, when
/// enabled (`--no-board` turns it off).
#[derive(Clone, Copy, Debug)]
pub struct BoardLayer {
    enabled: bool,
}

impl BoardLayer {
    /// A layer that serves the board when `enabled`, and otherwise only passes requests on.
    pub fn new(enabled: bool) -> BoardLayer {
        BoardLayer { enabled }
    }
}

impl<S> Layer<S> for BoardLayer {
    type Service = Board<S>;

    fn layer(&self, inner: S) -> Board<S> {
        Board { inner, enabled: self.enabled }
    }
}

/// The service [`BoardLayer`] wraps around the gRPC stack.
#[derive(Clone, Debug)]
pub struct Board<S> {
    inner: S,
    enabled: bool,
}

impl<S, B> Service<Request<B>> for Board<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response<Body>, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if self.enabled && assets::is_board_request(request.method(), request.uri().path()) {
            let response = assets::respond(request.method(), request.uri().path(), request.headers());
            return Either::Left(ready(Ok(response.map(|bytes| Body::new(axum::body::Body::from(bytes))))));
        }
        Either::Right(self.inner.call(request))
    }
}
