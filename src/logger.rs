//! The logger bridge: delivers the core's log records to the application's logger object on
//! the JavaScript thread.

use std::sync::Arc;

use napi::bindgen_prelude::JsObjectValue;
use napi::bindgen_prelude::{FnArgs, Function, FunctionRef, Object};
use napi::threadsafe_function::{
    ThreadsafeCallContext, ThreadsafeFunction, ThreadsafeFunctionCallMode, UnknownReturnValue,
};
use napi::{sys, Env, Result, Status};
use tokio::sync::watch;

use crate::core::log::{Level, LogRecord, LogSink, Value};

/// The four methods a logger must have, in the order of [`method_index`].
pub const METHODS: [&str; 4] = ["debug", "info", "warn", "error"];

type LoggerArgs = FnArgs<(String, serde_json::Value)>;
type LoggerMethod = FunctionRef<LoggerArgs, UnknownReturnValue>;

/// A record on its way to the JavaScript thread. Dropping it, delivered or not, counts it as
/// done, so `flush` cannot wait for a record the runtime discarded at exit.
struct Delivery {
    record: LogRecord,
    _pending: PendingGuard,
}

struct PendingGuard(Arc<watch::Sender<usize>>);

impl PendingGuard {
    fn new(counter: &Arc<watch::Sender<usize>>) -> Self {
        counter.send_modify(|pending| *pending += 1);
        Self(Arc::clone(counter))
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.0.send_modify(|pending| *pending -= 1);
    }
}

/// A [`LogSink`] that calls `logger.info(message, context)` (and `debug`, `warn`, `error`) on
/// the JavaScript thread, with `this` bound to the logger object.
///
/// All records go through one weak ThreadsafeFunction: one queue keeps them in order, and a weak
/// function does not keep the process alive. A logger that throws is ignored; the exception does
/// not reach the host process.
pub struct JsLogger {
    queue: ThreadsafeFunction<Delivery, (), (), Status, false, true>,
    pending: Arc<watch::Sender<usize>>,
}

impl JsLogger {
    /// Binds each logging method of `logger` to it. The caller has checked that all four
    /// methods are functions.
    pub fn new(env: &Env, logger: &Object) -> Result<Self> {
        let mut methods = Vec::with_capacity(METHODS.len());
        for name in METHODS {
            let method: Function<LoggerArgs, UnknownReturnValue> =
                logger.get_named_property(name)?;
            methods.push(method.bind(logger)?.create_ref()?);
        }

        let noop: Function<(), ()> =
            env.create_function_from_closure("forumAgentLogDelivery", |_| Ok(()))?;
        let queue = noop
            .build_threadsafe_function::<Delivery>()
            .weak::<true>()
            .callee_handled::<false>()
            .build_callback(move |context: ThreadsafeCallContext<Delivery>| {
                deliver(&context.env, &methods, &context.value.record);
                Ok(())
            })?;

        Ok(Self {
            queue,
            pending: Arc::new(watch::Sender::new(0)),
        })
    }

    /// Waits until every record sent so far has been handed to the logger (or dropped because
    /// the runtime is shutting down).
    pub async fn flush(&self) {
        let mut pending = self.pending.subscribe();
        // The sender lives as long as `self`, so the wait cannot fail.
        let _ = pending.wait_for(|pending| *pending == 0).await;
    }
}

impl LogSink for JsLogger {
    fn log(&self, record: LogRecord) {
        let delivery = Delivery {
            record,
            _pending: PendingGuard::new(&self.pending),
        };
        // A failed call (the environment is closing) drops the delivery, which settles its count.
        let _ = self
            .queue
            .call(delivery, ThreadsafeFunctionCallMode::NonBlocking);
    }
}

fn method_index(level: Level) -> usize {
    match level {
        Level::Debug => 0,
        Level::Info => 1,
        Level::Warn => 2,
        Level::Error => 3,
    }
}

/// Calls the logger method for `record` on the JavaScript thread and discards whatever it
/// throws.
fn deliver(env: &Env, methods: &[LoggerMethod], record: &LogRecord) {
    let Ok(method) = methods[method_index(record.level)].borrow_back(env) else {
        return;
    };

    let context = record
        .context
        .iter()
        .map(|(key, value)| {
            let value = match value {
                Value::Str(text) => serde_json::Value::from(text.as_str()),
                Value::Int(number) => serde_json::Value::from(*number),
            };
            ((*key).to_owned(), value)
        })
        .collect::<serde_json::Map<_, _>>();

    // `call` takes the exception out of the environment when the logger throws. Turning a thrown
    // value into an Error can itself throw (a thrown Symbol cannot become a string), so any
    // exception still pending afterwards is cleared too.
    let arguments = (
        record.message.to_owned(),
        serde_json::Value::Object(context),
    );
    let _ = method.call(FnArgs::from(arguments));
    clear_pending_exception(env);
}

fn clear_pending_exception(env: &Env) {
    let mut pending = false;
    // SAFETY: `env` is the live environment of the JavaScript thread this callback runs on.
    unsafe {
        if sys::napi_is_exception_pending(env.raw(), &mut pending) == sys::Status::napi_ok
            && pending
        {
            let mut exception = std::ptr::null_mut();
            sys::napi_get_and_clear_last_exception(env.raw(), &mut exception);
        }
    }
}
