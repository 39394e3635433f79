import type { Context, Next } from 'koa';
import { Counter, Histogram, Registry, collectDefaultMetrics, Gauge } from 'prom-client';

/** One registry per service so that tests can build several apps in one process. */
export class Metrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'crawlhub_http_requests_total',
    help: 'HTTP requests by method, route and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'crawlhub_http_request_duration_seconds',
    help: 'HTTP request latency by method and route',
    labelNames: ['method', 'route'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly sessions = new Gauge({
    name: 'crawlhub_sessions',
    help: 'Code sessions by status',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });
  readonly syncs = new Counter({
    name: 'crawlhub_syncs_total',
    help: 'Saves to the server by outcome',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly syncDuration = new Histogram({
    name: 'crawlhub_sync_duration_seconds',
    help: 'Duration of saves to the server',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });
  readonly proxyRequests = new Counter({
    name: 'crawlhub_proxy_requests_total',
    help: 'Requests and upgrades through the browser IDE proxy by outcome',
    labelNames: ['kind', 'outcome'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  middleware() {
    return async (ctx: Context, next: Next) => {
      const end = this.latency.startTimer();
      try {
        await next();
      } finally {
        // The matched route pattern keeps label cardinality bounded; unmatched paths share one label.
        const route = (ctx as Context & { _matchedRoute?: string })._matchedRoute ?? 'unmatched';
        end({ method: ctx.method, route });
        this.requests.inc({ method: ctx.method, route, status: String(ctx.status) });
      }
    };
  }
}
