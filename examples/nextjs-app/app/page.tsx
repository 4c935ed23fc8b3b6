// The home page: what forkd has written so far, read straight from the
// stores on every request (a server component; nothing runs in the browser).
import { latestOrders, todaysRevenue } from '../lib/stores';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

export default function Home() {
  const orders = latestOrders(20);
  const revenue = todaysRevenue();

  return (
    <main>
      <h1>Fork + Next.js</h1>
      <p>
        <code>POST /api/purchase</code> (Pages Router) and <code>POST /api/orders</code> (App Router) hand each
        purchase to forkd, which writes it to <code>data/production.db</code>, adds it to today&apos;s revenue in{' '}
        <code>data/analytics.db</code> and logs it to <code>data/logs/events.jsonl</code>. Reload to see new rows, or
        watch them arrive on the <a href="/live">live page</a>.
      </p>

      <section data-testid="revenue">
        <h2>Today&apos;s revenue</h2>
        {revenue.length === 0 ? (
          <p>No orders yet</p>
        ) : (
          <ul>
            {revenue.map((r) => (
              <li key={r.currency} data-testid="revenue-row">
                {`${r.currency} ${Number(r.revenue).toFixed(2)} (${r.orders} orders)`}
              </li>
            ))}
          </ul>
        )}
      </section>

      <section>
        <h2>Latest orders</h2>
        {orders.length === 0 ? (
          <p data-testid="orders">No orders yet</p>
        ) : (
          <table data-testid="orders">
            <thead>
              <tr>
                <th>orderId</th>
                <th>amount</th>
                <th>currency</th>
              </tr>
            </thead>
            <tbody>
              {orders.map((o) => (
                <tr key={o.orderId} data-testid="order-row">
                  <td>{o.orderId}</td>
                  <td>{Number(o.amount).toFixed(2)}</td>
                  <td>{o.currency}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </main>
  );
}
