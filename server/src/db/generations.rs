//! The generation counters (migration 0008) and the caches they keep correct across servers.
//!
//! Triggers bump `generations.catalog` in the transaction of every write to a table the
//! catalogue reads, and `generations.tokens` in that of every change to what authentication
//! reads of a token. A value read *after* the counter was read as `g` is at least as new as
//! state `g`; kept under `g`, it may be served for as long as the counter still reads `g`,
//! which every request checks with one small query. A write through any server moves the
//! counter, so no server serves what it cached before the write (read-after-write holds
//! across servers, docs/ARCHITECTURE.md).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use sqlx::Row as _;
use tokio::sync::OnceCell;

use super::Db;

/// The counters, read together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generations {
    pub catalog: i64,
    pub tokens: i64,
}

impl Db {
    /// The current counters (one indexed single-row read).
    pub async fn generations(&self) -> Result<Generations, sqlx::Error> {
        let row = sqlx::query("SELECT catalog, tokens FROM generations WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(Generations {
            catalog: row.try_get(0)?,
            tokens: row.try_get(1)?,
        })
    }
}

/// Values read under one generation of a counter. Entries of an older generation are
/// dropped as soon as a newer one is stored; at most `capacity` entries are kept (when full,
/// the cache starts over: simple, bounded, and cheap to refill).
///
/// [`GenCache::get_or_try_init`] computes a missing value once however many requests ask
/// for it at the same time: after a write moves the counter, the many readers of a hot
/// answer wait for one computation instead of each running the same queries.
#[derive(Debug)]
pub struct GenCache<V> {
    inner: Mutex<Entries<V>>,
    /// The computations in progress, by key, with the generation they compute under.
    flights: Mutex<HashMap<String, Flight<V>>>,
    capacity: usize,
}

type Flight<V> = (i64, Arc<OnceCell<V>>);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug)]
struct Entries<V> {
    generation: i64,
    map: HashMap<String, V>,
}

impl<V: Clone> GenCache<V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Entries {
                generation: i64::MIN,
                map: HashMap::new(),
            }),
            flights: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// The value for `key` under `generation`: the stored one, or `init`'s, computed once for
    /// every caller asking under that generation meanwhile (they wait for it), then stored.
    /// An error is not stored: it goes to the caller whose `init` failed, and a waiting caller
    /// runs its own `init`.
    pub async fn get_or_try_init<E, F>(
        &self,
        generation: i64,
        key: &str,
        init: impl FnOnce() -> F,
    ) -> Result<V, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        if let Some(v) = self.get(generation, key) {
            return Ok(v);
        }
        let cell = {
            let mut flights = lock(&self.flights);
            match flights.get(key) {
                Some((g, cell)) if *g == generation => cell.clone(),
                // A computation under a newer generation: this older caller computes alone.
                Some((g, _)) if *g > generation => Arc::new(OnceCell::new()),
                _ => {
                    if flights.len() >= self.capacity {
                        // Flights nobody waits for any more (their callers went away).
                        flights.retain(|_, (_, c)| Arc::strong_count(c) > 1);
                    }
                    let cell = Arc::new(OnceCell::new());
                    flights.insert(key.to_owned(), (generation, cell.clone()));
                    cell
                }
            }
        };
        let result = cell.get_or_try_init(init).await.cloned();
        if let Ok(v) = &result {
            self.put(generation, key.to_owned(), v.clone());
        }
        let mut flights = lock(&self.flights);
        if flights.get(key).is_some_and(|(_, c)| Arc::ptr_eq(c, &cell)) {
            flights.remove(key);
        }
        result
    }

    /// The value stored for `key` under exactly `generation`.
    pub fn get(&self, generation: i64, key: &str) -> Option<V> {
        let entries = lock(&self.inner);
        if entries.generation != generation {
            return None;
        }
        entries.map.get(key).cloned()
    }

    /// Keep `value`, read after the counter read `generation`. A value of an older
    /// generation than the cache holds is not kept.
    pub fn put(&self, generation: i64, key: String, value: V) {
        let mut entries = lock(&self.inner);
        if generation < entries.generation {
            return;
        }
        if generation > entries.generation {
            entries.generation = generation;
            entries.map.clear();
        }
        if entries.map.len() >= self.capacity {
            entries.map.clear();
        }
        entries.map.insert(key, value);
    }

    /// Change the value stored for `key` under `generation`, if there is one (e.g. a
    /// token's `last_used_at` after this process wrote it).
    pub fn update(&self, generation: i64, key: &str, f: impl FnOnce(&mut V)) {
        let mut entries = lock(&self.inner);
        if entries.generation == generation
            && let Some(v) = entries.map.get_mut(key)
        {
            f(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::GenCache;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_misses_compute_once_and_errors_are_not_kept() {
        let c = Arc::new(GenCache::<u64>::new(100));
        let runs = Arc::new(AtomicUsize::new(0));
        let ask = |generation: i64| {
            let (c, runs) = (c.clone(), runs.clone());
            tokio::spawn(async move {
                c.get_or_try_init(generation, "k", || async {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok::<_, ()>(generation as u64 * 10)
                })
                .await
            })
        };
        let waiting: Vec<_> = (0..32).map(|_| ask(1)).collect();
        for w in waiting {
            assert_eq!(w.await.unwrap(), Ok(10));
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "one computation for 32 callers"
        );
        assert_eq!(c.get(1, "k"), Some(10));
        // A new generation computes again, once.
        let waiting: Vec<_> = (0..8).map(|_| ask(2)).collect();
        for w in waiting {
            assert_eq!(w.await.unwrap(), Ok(20));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        // A failure is the failing caller's; the next caller computes.
        let failed = c
            .get_or_try_init(3, "k", || async { Err::<u64, _>("down") })
            .await;
        assert_eq!(failed, Err("down"));
        assert_eq!(c.get(3, "k"), None);
        assert_eq!(
            c.get_or_try_init(3, "k", || async { Ok::<_, ()>(30) })
                .await,
            Ok(30)
        );
        assert!(
            c.flights.lock().unwrap().is_empty(),
            "no flight is left behind"
        );
    }

    #[test]
    fn a_value_is_served_only_under_its_generation() {
        let c = GenCache::new(2);
        c.put(5, "a".into(), 1);
        assert_eq!(c.get(5, "a"), Some(1));
        assert_eq!(c.get(6, "a"), None, "a newer generation misses");
        assert_eq!(c.get(4, "a"), None);
        // An older reader does not overwrite newer entries.
        c.put(4, "a".into(), 0);
        assert_eq!(c.get(5, "a"), Some(1));
        // A newer generation drops everything older.
        c.put(6, "b".into(), 2);
        assert_eq!(c.get(5, "a"), None);
        assert_eq!(c.get(6, "b"), Some(2));
        c.update(6, "b", |v| *v = 3);
        c.update(5, "b", |v| *v = 9);
        assert_eq!(c.get(6, "b"), Some(3));
    }

    #[test]
    fn the_cache_stays_bounded() {
        let c = GenCache::new(3);
        for i in 0..10 {
            c.put(1, format!("k{i}"), i);
        }
        let kept = (0..10)
            .filter(|i| c.get(1, &format!("k{i}")).is_some())
            .count();
        assert!((1..=3).contains(&kept), "{kept}");
        assert_eq!(c.get(1, "k9"), Some(9));
    }
}
