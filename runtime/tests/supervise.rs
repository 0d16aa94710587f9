//! A handler that panics under `guard` restarts its supervised actor with its state, behind
//! the same address; without `guard` actix would leave the actor dead.

use actix::prelude::*;
use impulse_runtime::supervise::{guard, PanicCount};
use std::sync::Arc;

struct Counter {
    n: u32,
    restarts: u32,
    started: u32,
    panics: Arc<PanicCount>,
}

impl Actor for Counter {
    type Context = Context<Self>;
    fn started(&mut self, _: &mut Context<Self>) {
        self.started += 1;
    }
}

impl Supervised for Counter {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.restarts += 1;
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Inc;

#[derive(Message)]
#[rtype(result = "()")]
struct Boom;

#[derive(Message)]
#[rtype(result = "(u32, u32, u32)")]
struct Get;

impl Handler<Inc> for Counter {
    type Result = ();
    fn handle(&mut self, _: Inc, ctx: &mut Context<Self>) {
        let panics = self.panics.clone();
        guard(self, ctx, "counter", Some(&panics), |act, _| act.n += 1);
    }
}

impl Handler<Boom> for Counter {
    type Result = ();
    fn handle(&mut self, _: Boom, ctx: &mut Context<Self>) {
        let panics = self.panics.clone();
        guard(self, ctx, "counter", Some(&panics), |_, _| panic!("boom"));
    }
}

impl Handler<Get> for Counter {
    type Result = MessageResult<Get>;
    fn handle(&mut self, _: Get, _: &mut Context<Self>) -> Self::Result {
        MessageResult((self.n, self.restarts, self.started))
    }
}

#[actix_rt::test]
async fn a_panicking_handler_restarts_the_actor_with_its_state() {
    let panics = Arc::new(PanicCount::default());
    let p = panics.clone();
    let addr = Supervisor::start(move |_| Counter {
        n: 0,
        restarts: 0,
        started: 0,
        panics: p,
    });
    addr.send(Inc).await.unwrap();
    addr.send(Inc).await.unwrap();
    addr.send(Boom).await.unwrap();
    addr.send(Inc).await.unwrap();
    let (n, restarts, started) = addr.send(Get).await.unwrap();
    assert_eq!(n, 3, "state survives the restart");
    assert_eq!(restarts, 1);
    assert_eq!(started, 2, "started runs again after the restart");
    assert_eq!(panics.get(), 1);
    assert!(addr.connected());
}
