// Stripe's Node webhook verifier on a delivery of Bastion's: the receiver's bytes (base64), the
// Stripe-Signature header and the endpoint's secret come as JSON on stdin; what the verifier made
// of the delivery, of it tampered and of a wrong secret is printed as JSON (tests/sdk/test_node_sdk.py).
import Stripe from 'stripe';

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const { payload, signature, secret } = JSON.parse(Buffer.concat(chunks).toString('utf8'));
const body = Buffer.from(payload, 'base64');
// The verifier needs no key and makes no request.
const stripe = new Stripe('sk_test_unused');

const verified = (bytes, key) => {
  try {
    const event = stripe.webhooks.constructEvent(bytes, signature, key);
    return { accepted: true, id: event.id, type: event.type, object: event.data.object.id };
  } catch (error) {
    return { accepted: false, error: error.type ?? String(error) };
  }
};

const tampered = Buffer.from(body.toString('utf8').replace('"succeeded"', '"canceled"'), 'utf8');
process.stdout.write(
  `${JSON.stringify({
    delivered: verified(body, secret),
    tamperedChanged: !tampered.equals(body),
    tampered: verified(tampered, secret),
    wrongSecret: verified(body, `whsec_${'0'.repeat(32)}`),
  })}\n`,
);
