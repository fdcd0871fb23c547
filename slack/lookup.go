package slack

import (
	"context"
	"strconv"
	"time"

	goslack "github.com/slack-go/slack"

	"github.com/switchboardhq/switchboard"
)

// metadataType marks the messages Switchboard posts with chat.postMessage;
// their payload names the run and the message, so a post whose outcome was
// unknown can be found again.
const metadataType = "switchboard_message"

// messageMetadata is what a chat.postMessage of msg carries.
func messageMetadata(msg switchboard.Message) goslack.SlackMetadata {
	return goslack.SlackMetadata{EventType: metadataType, EventPayload: map[string]any{"run_id": msg.RunID, "key": msg.Key}}
}

// lookupWindow is how far before the unsure attempt the channel is read,
// for clocks that disagree.
const lookupWindow = 10 * time.Second

// find looks in the channel for msg, posted by an earlier attempt whose
// outcome is unknown (msg.MaybeSent). It reports the Delivery and true when
// the message is there. It can look only with the bot token, in a channel
// the bot may read (channels:history, groups:history), and not for an
// ephemeral message, which no API returns: then it reports false and the
// message is posted again (at least once).
//
// A chat.postMessage is found by its metadata. A response_url post carries
// none, so it is found by its text among the app's messages since the
// attempt; two runs posting the same text within seconds, one of them cut
// off, count as one.
func (m *Messenger) find(ctx context.Context, msg switchboard.Message) (switchboard.Delivery, bool) {
	if m.BotToken == "" || msg.Ephemeral || msg.ChannelID == "" || msg.MaybeSent.IsZero() {
		return switchboard.Delivery{}, false
	}
	api := goslack.New(m.BotToken, goslack.OptionAPIURL(apiBaseURL(m.APIURL)), goslack.OptionHTTPClient(m.client()))
	oldest := slackTS(msg.MaybeSent.Add(-lookupWindow))
	var msgs []goslack.Message
	var err error
	if msg.ThreadRef != "" {
		msgs, _, _, err = api.GetConversationRepliesContext(ctx, &goslack.GetConversationRepliesParameters{
			ChannelID: msg.ChannelID, Timestamp: msg.ThreadRef, Oldest: oldest, Limit: 200, IncludeAllMetadata: true})
	} else {
		var resp *goslack.GetConversationHistoryResponse
		resp, err = api.GetConversationHistoryContext(ctx, &goslack.GetConversationHistoryParameters{
			ChannelID: msg.ChannelID, Oldest: oldest, Limit: 200, IncludeAllMetadata: true})
		if resp != nil {
			msgs = resp.Messages
		}
	}
	if err != nil {
		if m.Logger != nil {
			m.Logger.Warn("could not look for a message whose post may have landed; posting it again", "run", msg.RunID, "message", msg.Key, "err", err)
		}
		return switchboard.Delivery{}, false
	}
	for _, got := range msgs {
		md := got.Metadata
		if md.EventType == metadataType {
			if md.EventPayload["run_id"] == msg.RunID && md.EventPayload["key"] == msg.Key {
				return switchboard.Delivery{Via: viaPostMessage, Ref: got.Timestamp}, true
			}
			continue
		}
		if msg.ResponseURL != "" && got.BotID != "" && got.Text == msg.Text {
			return switchboard.Delivery{Via: viaResponseURL}, true
		}
	}
	return switchboard.Delivery{}, false
}

// slackTS writes t as Slack's message timestamps are written.
func slackTS(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMicro())/1e6, 'f', 6, 64)
}
