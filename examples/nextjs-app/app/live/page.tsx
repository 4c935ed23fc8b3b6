// The live page: today's revenue and a ticker of purchases, moving as
// purchases arrive. The server renders today's revenue from the analytics
// store; the browser then follows forkd's streams through the app's own
// routes (app/api/live/*).
import { todaysRevenue } from '../../lib/stores';
import { LiveBoard } from './live-board';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

export default function Live() {
  return (
    <main>
      <h1>Live</h1>
      <p>
        Purchases appear here as forkd delivers them: <code>POST /api/purchase</code> or <code>POST /api/orders</code>{' '}
        and watch.
      </p>
      <LiveBoard initialRevenue={todaysRevenue()} />
    </main>
  );
}
