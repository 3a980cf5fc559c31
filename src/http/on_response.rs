//! Middleware that changes each response after the inner service made it,
//! written once: a [`ResponseHook`] says what to change, [`OnResponse`] is the
//! actix-web plumbing (a plain service and future, no boxing, since every
//! request passes through it). Several hooks in a tuple run in one layer, in
//! order, so each costs a function call rather than a middleware of its own.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready};

use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};

/// What a middleware does to each response: it may change it in place or
/// return another one.
pub trait ResponseHook: 'static {
    fn apply(&self, res: ServiceResponse) -> Result<ServiceResponse, actix_web::Error>;
}

impl<A: ResponseHook, B: ResponseHook, C: ResponseHook> ResponseHook for (A, B, C) {
    fn apply(&self, res: ServiceResponse) -> Result<ServiceResponse, actix_web::Error> {
        self.2.apply(self.1.apply(self.0.apply(res)?)?)
    }
}

/// Wraps a [`ResponseHook`] as middleware: `.wrap(OnResponse::new(hook))`.
pub struct OnResponse<H>(Rc<H>);

impl<H: ResponseHook> OnResponse<H> {
    pub fn new(hook: H) -> Self {
        Self(Rc::new(hook))
    }
}

impl<S, H> Transform<S, ServiceRequest> for OnResponse<H>
where
    S: Service<ServiceRequest, Response = ServiceResponse, Error = actix_web::Error>,
    H: ResponseHook,
{
    type Response = ServiceResponse;
    type Error = actix_web::Error;
    type Transform = OnResponseService<S, H>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(OnResponseService {
            service,
            hook: self.0.clone(),
        }))
    }
}

pub struct OnResponseService<S, H> {
    service: S,
    hook: Rc<H>,
}

impl<S, H> Service<ServiceRequest> for OnResponseService<S, H>
where
    S: Service<ServiceRequest, Response = ServiceResponse, Error = actix_web::Error>,
    H: ResponseHook,
{
    type Response = ServiceResponse;
    type Error = actix_web::Error;
    type Future = OnResponseFuture<S::Future, H>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        OnResponseFuture {
            inner: self.service.call(req),
            hook: self.hook.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct OnResponseFuture<F, H> {
        #[pin]
        inner: F,
        hook: Rc<H>,
    }
}

impl<F, H> Future for OnResponseFuture<F, H>
where
    F: Future<Output = Result<ServiceResponse, actix_web::Error>>,
    H: ResponseHook,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.inner.poll(cx))?;
        Poll::Ready(this.hook.apply(res))
    }
}
