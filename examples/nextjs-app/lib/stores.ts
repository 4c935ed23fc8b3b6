// Reads what forkd wrote, for the page. The app only ever reads these files:
// writing is forkd's job (SQLite in WAL mode: readers never block it).
import { existsSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

// The stores fork.yaml names, relative to this directory: `next start` and
// `next dev` run with the app directory as the working directory.
export const PRODUCTION_DB = path.join(process.cwd(), 'data', 'production.db');
export const ANALYTICS_DB = path.join(process.cwd(), 'data', 'analytics.db');

export interface OrderRow {
  orderId: string;
  amount: number;
  currency: string;
}

export interface RevenueRow {
  currency: string;
  revenue: number;
  orders: number;
}

// Runs `query` on the database at `file`, opened read-only. Before the first
// event arrives the file, or its table, does not exist yet: that reads as no
// rows.
function read<T>(file: string, query: (db: Database.Database) => T[]): T[] {
  if (!existsSync(file)) return [];
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
  } catch (err) {
    if ((err as { code?: string }).code === 'SQLITE_CANTOPEN') return [];
    throw err;
  }
  try {
    return query(db);
  } catch (err) {
    if (/^no such (table|column)/.test((err as Error).message)) return [];
    throw err;
  } finally {
    db.close();
  }
}

/** The last `limit` orders written (an upserted order moves to the top). */
export function latestOrders(limit = 20): OrderRow[] {
  return read(PRODUCTION_DB, (db) =>
    db.prepare<[number], OrderRow>('SELECT orderId, amount, currency FROM orders ORDER BY rowid DESC LIMIT ?').all(limit),
  );
}

/**
 * Today's revenue per currency. The daily aggregate writes one row per
 * (UTC day, currency), keyed by its window: `window_start` is the day's start
 * as ISO-8601 UTC with milliseconds, `window` is '1d'.
 */
export function todaysRevenue(now = new Date()): RevenueRow[] {
  const dayStart = `${now.toISOString().slice(0, 10)}T00:00:00.000Z`;
  return read(ANALYTICS_DB, (db) =>
    db
      .prepare<[string], RevenueRow>(
        `SELECT currency, revenue, orders FROM daily_revenue
         WHERE "window" = '1d' AND window_start = ? ORDER BY currency`,
      )
      .all(dayStart),
  );
}
