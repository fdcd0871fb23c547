// app.js is the Slack Bolt for JavaScript side of bench/compare/run.sh: the
// same /ec2 slash command Switchboard serves, done the way a Bolt app does it.
// It verifies Slack's signature (HTTPReceiver, verification on), acks with an
// ephemeral message, then answers in the channel at the command's
// response_url. Nothing is stored: the ack comes from memory, and an answer
// lost to a crash is lost.
//
//   SLACK_SIGNING_SECRET=... PORT=3000 node app.js
//
// It listens on 127.0.0.1 only and needs no Slack token: it never calls the
// Web API, so the token is a placeholder that is never used.
'use strict';

const { App, HTTPReceiver, LogLevel } = require('@slack/bolt');

const signingSecret = process.env.SLACK_SIGNING_SECRET;
const port = Number(process.env.PORT);
if (!signingSecret || !Number.isInteger(port) || port <= 0) {
  console.error('set SLACK_SIGNING_SECRET and PORT (a free loopback port)');
  process.exit(2);
}

const receiver = new HTTPReceiver({
  signingSecret,
  // Switchboard's path, so that slackload's -url differs only in the port.
  endpoints: ['/slack/commands', '/slack/events'],
  logLevel: LogLevel.WARN,
});

const app = new App({
  receiver,
  // A single-workspace app. botId and botUserId given up front, as Bolt's
  // docs suggest, so that Bolt never calls auth.test: with only a token and
  // tokenVerificationEnabled false it calls auth.test on every request.
  token: 'xoxb-unused-by-this-benchmark',
  botId: 'B0BENCH',
  botUserId: 'U0BENCHBOT',
  tokenVerificationEnabled: false,
  logLevel: LogLevel.WARN,
  // Never used; if it were, it would hit a closed loopback port, not Slack.
  clientOptions: { slackApiUrl: 'http://127.0.0.1:9/api/' },
});

const instance = 'tools (i-0123456789abcdef0)';

app.command('/ec2', async ({ ack, respond }) => {
  // The same ack and answer bodies Switchboard sends for "/ec2 status tools".
  await ack({ response_type: 'ephemeral', text: `Checking ${instance} — I'll report back here.` });
  await respond({ response_type: 'in_channel', replace_original: false, text: `${instance} is running at 198.51.100.1.` });
});

app.error(async (error) => {
  console.error('bolt:', error && error.message ? error.message : error);
});

(async () => {
  await app.start({ port, host: '127.0.0.1' });
  console.error(`bolt listening on http://127.0.0.1:${port}/slack/commands`);
})().catch((error) => {
  console.error('bolt failed to start:', error);
  process.exit(1);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    app.stop().finally(() => process.exit(0));
    // Bounded: an open keep-alive connection must not keep us alive.
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
