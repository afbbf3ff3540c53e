// The official Stripe Node SDK against a live Bastion, as a team that moves from Stripe would
// drive it: only the host, the port and the keys changed. Run by tests/sdk/test_node_sdk.py, which
// passes the server and the keys in the environment and asserts on the JSON report printed here:
// one entry per scenario, what the SDK answered or the error it raised.
import Stripe from 'stripe';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const api = new URL(env('BASTION_API_URL'));
const vaultUrl = env('BASTION_VAULT_URL');
const secretKey = env('BASTION_SECRET_KEY');
const publishableKey = env('BASTION_PUBLISHABLE_KEY');
// A front that loses Bastion's answer to the first POST it forwards (answering 503 instead).
const front = new URL(env('BASTION_FRONT_URL'));

// The sandbox's test cards (docs/payments.md).
const VISA = '4242424242424242';
const MASTERCARD = '5555555555554444';
const INSUFFICIENT_FUNDS = '4000000000009995';
const REQUEST_TIMEOUT_MS = 20_000;
const CUSTOMERS_PAGED = 7;
const PAGE_SIZE = 3;

const client = (key, options = {}, base = api) =>
  new Stripe(key, {
    host: base.hostname,
    port: Number(base.port),
    protocol: 'http',
    // No retries unless a scenario asks: each answer is seen as Bastion gave it.
    maxNetworkRetries: 0,
    timeout: REQUEST_TIMEOUT_MS,
    ...options,
  });
const stripe = client(secretKey);

// What the report says of an error the SDK raised.
const described = (error) => ({
  type: error.type,
  rawType: error.rawType ?? null,
  statusCode: error.statusCode ?? null,
  code: error.code ?? null,
  param: error.param ?? null,
  declineCode: error.decline_code ?? null,
  paymentIntent: error.payment_intent?.id ?? null,
  paymentIntentStatus: error.payment_intent?.status ?? null,
  requestId: error.requestId ?? null,
  message: error.message,
});

// The error `call` raises, described; a call that succeeds is reported as such.
const raised = async (call) => {
  try {
    const answer = await call();
    return { raised: null, answered: answer?.id ?? null };
  } catch (error) {
    return described(error);
  }
};

// A single-use token of a test card, made at the vault with the publishable key, as a shop's page makes it.
const cardToken = async (number) => {
  const response = await fetch(`${vaultUrl}/v1/tokens`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${publishableKey}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ card: { number, exp_month: 12, exp_year: new Date().getFullYear() + 1, cvc: '123' } }),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const body = await response.json();
  if (response.status !== 200) throw new Error(`the vault answered ${response.status}: ${JSON.stringify(body)}`);
  return body.id;
};

const paymentMethod = async (number = VISA) => {
  const method = await stripe.paymentMethods.create({ type: 'card', card: { token: await cardToken(number) } });
  return method.id;
};

const scenarios = {
  async customers() {
    const created = await stripe.customers.create({
      email: 'jenny@example.com',
      name: 'Jenny Rosen',
      metadata: { order: '6735', channel: 'web' },
    });
    // Stripe unsets a metadata key sent empty.
    const updated = await stripe.customers.update(created.id, { phone: '+1 555 555 0100', metadata: { order: '' } });
    const retrieved = await stripe.customers.retrieve(created.id);
    const deleted = await stripe.customers.del(created.id);
    return {
      id: created.id,
      object: created.object,
      email: created.email,
      metadata: created.metadata,
      requestId: created.lastResponse.requestId,
      updatedPhone: updated.phone,
      updatedMetadata: updated.metadata,
      retrievedSameAsUpdated: JSON.stringify(retrieved) === JSON.stringify(updated),
      deleted: { id: deleted.id, deleted: deleted.deleted },
    };
  },

  async autoPagination() {
    // Customers of one email of their own: the list is filtered by it, whatever else the shop has.
    const email = `paged-${Date.now()}@example.com`;
    const created = [];
    for (let number = 0; number < CUSTOMERS_PAGED; number += 1) {
      created.push((await stripe.customers.create({ email, name: `Paged ${number}` })).id);
    }
    const iterated = [];
    for await (const customer of stripe.customers.list({ email, limit: PAGE_SIZE })) {
      iterated.push(customer.id);
    }
    const collected = await stripe.customers.list({ email, limit: PAGE_SIZE }).autoPagingToArray({ limit: 100 });
    const firstPage = await stripe.customers.list({ email, limit: PAGE_SIZE });
    return {
      created,
      iterated,
      collected: collected.map((customer) => customer.id),
      firstPage: { count: firstPage.data.length, hasMore: firstPage.has_more },
    };
  },

  async paymentMethod() {
    const token = await cardToken(MASTERCARD);
    const method = await stripe.paymentMethods.create({ type: 'card', card: { token } });
    const reused = await raised(() => stripe.paymentMethods.create({ type: 'card', card: { token } }));
    return { id: method.id, object: method.object, brand: method.card.brand, last4: method.card.last4, reused };
  },

  async paymentIntents() {
    const paid = await stripe.paymentIntents.create({
      amount: 2000,
      currency: 'eur',
      payment_method: await paymentMethod(),
      confirm: true,
    });
    const later = await stripe.paymentIntents.create({ amount: 1500, currency: 'eur', payment_method: await paymentMethod() });
    const confirmed = await stripe.paymentIntents.confirm(later.id);
    const held = await stripe.paymentIntents.create({
      amount: 5000,
      currency: 'eur',
      capture_method: 'manual',
      payment_method: await paymentMethod(MASTERCARD),
      confirm: true,
    });
    const captured = await stripe.paymentIntents.capture(held.id, { amount_to_capture: 3000 });
    const voided = await stripe.paymentIntents.create({
      amount: 4000,
      currency: 'eur',
      capture_method: 'manual',
      payment_method: await paymentMethod(),
      confirm: true,
    });
    const canceled = await stripe.paymentIntents.cancel(voided.id);
    const expanded = await stripe.paymentIntents.retrieve(paid.id, { expand: ['payment_method', 'latest_charge'] });
    return {
      paid: { status: paid.status, amountReceived: paid.amount_received, latestCharge: paid.latest_charge },
      later: { status: later.status },
      confirmed: { status: confirmed.status, amountReceived: confirmed.amount_received },
      held: { status: held.status, amountCapturable: held.amount_capturable },
      captured: { status: captured.status, amountReceived: captured.amount_received },
      canceled: { status: canceled.status },
      expanded: {
        paymentMethodLast4: expanded.payment_method?.card?.last4 ?? null,
        latestCharge: { id: expanded.latest_charge?.id ?? null, object: expanded.latest_charge?.object ?? null },
      },
    };
  },

  async refund() {
    const intent = await stripe.paymentIntents.create({
      amount: 3000,
      currency: 'eur',
      payment_method: await paymentMethod(),
      confirm: true,
    });
    const refund = await stripe.refunds.create({ payment_intent: intent.id, amount: 500 });
    return { paymentIntent: intent.id, refund: { object: refund.object, status: refund.status, amount: refund.amount, paymentIntent: refund.payment_intent } };
  },

  async cardError() {
    const method = await paymentMethod(INSUFFICIENT_FUNDS);
    return raised(() => stripe.paymentIntents.create({ amount: 2000, currency: 'eur', payment_method: method, confirm: true }));
  },

  async invalidRequest() {
    return {
      badParameter: await raised(() => stripe.customers.create({ email: 'nope' })),
      missing: await raised(() => stripe.customers.retrieve('cus_missing')),
    };
  },

  async authentication() {
    return raised(() => client(`${secretKey.slice(0, -4)}XXXX`).customers.list());
  },

  async idempotency() {
    const key = `order-${Date.now()}`;
    const first = await stripe.customers.create({ name: 'Once' }, { idempotencyKey: key });
    const again = await stripe.customers.create({ name: 'Once' }, { idempotencyKey: key });
    const otherBody = await raised(() => stripe.customers.create({ name: 'Twice' }, { idempotencyKey: key }));
    return {
      key,
      first: first.id,
      again: again.id,
      firstKey: first.lastResponse.idempotencyKey ?? null,
      againKey: again.lastResponse.idempotencyKey ?? null,
      firstReplayed: first.lastResponse.headers['idempotent-replayed'] ?? null,
      againReplayed: again.lastResponse.headers['idempotent-replayed'] ?? null,
      otherBody,
    };
  },

  async sdkRetry() {
    // The SDK's own key on its first try, and the same key on its retry after the lost answer.
    const created = await client(secretKey, { maxNetworkRetries: 2 }, front).customers.create({ name: 'Retried' });
    return {
      id: created.id,
      idempotencyKey: created.lastResponse.idempotencyKey ?? null,
      replayed: created.lastResponse.headers['idempotent-replayed'] ?? null,
    };
  },
};

const report = {};
for (const [name, scenario] of Object.entries(scenarios)) {
  try {
    report[name] = { ok: true, ...(await scenario()) };
  } catch (error) {
    // One scenario's failure is reported, and the others still run.
    report[name] = { ok: false, error: error.type ? described(error) : { message: String(error?.stack ?? error) } };
  }
}
process.stdout.write(`${JSON.stringify(report)}\n`);
