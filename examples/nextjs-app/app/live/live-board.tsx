'use client';
// Follows two Server-Sent Event streams with the browser's EventSource,
// which reconnects by itself and sends Last-Event-ID, so forkd resumes
// exactly after the last message this page got: no purchase is lost or
// shown twice across a forkd restart.
import { useEffect, useState } from 'react';
import type { RevenueRow } from '../../lib/stores';

interface Purchase {
  _fork_id: string;
  orderId: string;
  amount: number;
  currency: string;
}

export function LiveBoard({ initialRevenue }: { initialRevenue: RevenueRow[] }) {
  // Rendered from the analytics store, then replaced by the stream's updates
  // (`live`).
  const [revenue, setRevenue] = useState<Record<string, RevenueRow & { live?: boolean }>>(() =>
    Object.fromEntries(initialRevenue.map((r) => [r.currency, r])),
  );
  const [latest, setLatest] = useState<Purchase[]>([]);
  // Every purchase this page received, and how many messages: equal when
  // none came twice.
  const [seen, setSeen] = useState<{ ids: Set<string>; messages: number }>({ ids: new Set(), messages: 0 });
  const [connected, setConnected] = useState(false);

  useEffect(() => {
    // Live (data-connected) once both streams are open, so nothing sent from
    // then on is missed by either.
    const isOpen = { ticker: false, totals: false };
    const mark = (s: keyof typeof isOpen, on: boolean) => () => {
      isOpen[s] = on;
      setConnected(isOpen.ticker && isOpen.totals);
    };
    const ticker = new EventSource('/api/live/ticker');
    ticker.onopen = mark('ticker', true);
    ticker.onerror = mark('ticker', false);
    ticker.onmessage = (e) => {
      const p = JSON.parse(e.data) as Purchase;
      setLatest((l) => [p, ...l].slice(0, 10));
      setSeen((s) => {
        const ids = new Set(s.ids);
        ids.add(p.orderId);
        return { ids, messages: s.messages + 1 };
      });
    };
    const totals = new EventSource('/api/live/revenue');
    totals.onopen = mark('totals', true);
    totals.onerror = mark('totals', false);
    totals.onmessage = (e) => {
      const row = JSON.parse(e.data) as RevenueRow & { window_start: string };
      // Today's window only (UTC, as the aggregate's windows are).
      if (row.window_start.slice(0, 10) !== new Date().toISOString().slice(0, 10)) return;
      setRevenue((r) => ({
        ...r,
        [row.currency]: { currency: row.currency, revenue: row.revenue, orders: row.orders, live: true },
      }));
    };
    return () => {
      ticker.close();
      totals.close();
    };
  }, []);

  const rows = Object.values(revenue).sort((a, b) => a.currency.localeCompare(b.currency));
  return (
    <>
      <section data-testid="live-revenue">
        <h2>Today&apos;s revenue</h2>
        {rows.length === 0 ? (
          <p>No orders yet</p>
        ) : (
          <ul>
            {rows.map((r) => (
              <li
                key={r.currency}
                data-testid="live-revenue-row"
                data-currency={r.currency}
                data-orders={r.orders}
                data-live={r.live ? 'yes' : 'no'}
              >
                {`${r.currency} ${Number(r.revenue).toFixed(2)} (${r.orders} orders)`}
              </li>
            ))}
          </ul>
        )}
      </section>
      <section>
        <h2>
          Ticker{' '}
          <small data-testid="live-status" data-connected={connected ? 'yes' : 'no'}>
            {connected ? 'live' : 'reconnecting…'}
          </small>
        </h2>
        <p data-testid="live-seen" data-purchases={seen.ids.size} data-messages={seen.messages}>
          {`${seen.ids.size} purchases since this page opened`}
        </p>
        <ol data-testid="ticker">
          {latest.map((p) => (
            <li key={p._fork_id} data-testid="ticker-row">
              {`${p.orderId}: ${p.currency} ${Number(p.amount).toFixed(2)}`}
            </li>
          ))}
        </ol>
      </section>
    </>
  );
}
