//! Middleware that changes each response after the inner service made it,
//! written once: a [`ResponseHook`] says what to change, [`OnResponse`] is the
//! actix-web plumbing (a plain service and future, no boxing, since every
//! request passes through it).

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready};

use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};

/// What a middleware does to each response.
pub trait ResponseHook: 'static {
    fn apply<B>(&self, res: &mut ServiceResponse<B>) -> Result<(), actix_web::Error>;
}

/// Wraps a [`ResponseHook`] as middleware: `.wrap(OnResponse::new(hook))`.
pub struct OnResponse<H>(Rc<H>);

impl<H: ResponseHook> OnResponse<H> {
    pub fn new(hook: H) -> Self {
        Self(Rc::new(hook))
    }
}

impl<S, B, H> Transform<S, ServiceRequest> for OnResponse<H>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    H: ResponseHook,
{
    type Response = ServiceResponse<B>;
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

impl<S, B, H> Service<ServiceRequest> for OnResponseService<S, H>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    H: ResponseHook,
{
    type Response = ServiceResponse<B>;
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

impl<F, B, H> Future for OnResponseFuture<F, H>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    H: ResponseHook,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = ready!(this.inner.poll(cx))?;
        this.hook.apply(&mut res)?;
        Poll::Ready(Ok(res))
    }
}
