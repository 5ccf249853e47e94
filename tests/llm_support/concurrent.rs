//! A Chat Completions server for calls made side by side: each request on a thread of
//! its own, counting how many are in flight at once.

use super::{answer_with, not_found, ok, read_request};
use std::net::TcpListener;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// (in flight now, most in flight at once, POSTs received).
type Counts = (usize, usize, usize);

/// A server that answers each POST on a thread of its own, so that requests can be in
/// flight side by side, and counts how many were at once. The first request is held until
/// a second one arrives (15 s at most: a client that asks one at a time still gets its
/// answer, only later), so that the count shows whether calls overlap, with no timing.
/// `answer(n)` gives the n-th (1-based) POST's reply body, served as JSON with 200.
pub struct Concurrent {
    pub url: String,
    counts: Arc<(Mutex<Counts>, Condvar)>,
}

impl Concurrent {
    pub fn start(answer: impl Fn(usize) -> String + Send + Sync + 'static) -> Concurrent {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let counts = Arc::new((Mutex::new((0, 0, 0)), Condvar::new()));
        let (shared, answer) = (counts.clone(), Arc::new(answer));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (counts, answer) = (shared.clone(), answer.clone());
                std::thread::spawn(move || {
                    stream
                        .set_read_timeout(Some(Duration::from_secs(30)))
                        .unwrap();
                    let Some((req, reader)) = read_request(&stream) else {
                        return;
                    };
                    if req.method == "GET" {
                        return answer_with(stream, reader, not_found());
                    }
                    let (lock, cv) = &*counts;
                    let n = {
                        let mut c = lock.lock().unwrap();
                        c.0 += 1;
                        c.1 = c.1.max(c.0);
                        c.2 += 1;
                        cv.notify_all();
                        let n = c.2;
                        // Only the first waits, and only until the peak reaches two.
                        let (c, _) = cv
                            .wait_timeout_while(c, Duration::from_secs(15), |c| n == 1 && c.1 < 2)
                            .unwrap();
                        drop(c);
                        n
                    };
                    let body = answer(n);
                    {
                        let mut c = lock.lock().unwrap();
                        c.0 -= 1;
                    }
                    answer_with(stream, reader, ok(body));
                });
            }
        });
        Concurrent { url, counts }
    }

    /// The most requests that were in flight at once.
    pub fn peak(&self) -> usize {
        self.counts.0.lock().unwrap().1
    }

    /// POST requests received.
    pub fn received(&self) -> usize {
        self.counts.0.lock().unwrap().2
    }
}
