import assert from "node:assert/strict";
import { test } from "node:test";

import * as chat from "../../static/messaging/state/chat.js";
import { convName } from "../../static/messaging/state/conversations.js";
import { alice, bob, carol, direct } from "./helpers.js";

const at = (day) => `2026-11-${String(day).padStart(2, "0")}T09:00:00.000000Z`;

function conv(id, day, fields = {}) {
  return direct({ id, last_activity_at: at(day), created_at: at(day), ...fields });
}

function aliceWith(list) {
  const state = chat.createChatState({ me: alice });
  chat.setConversations(state, list);
  return state;
}

test("a later page of the inbox adds its conversations below, newest first", () => {
  const state = aliceWith([conv(1, 20), conv(2, 19)]);
  chat.addInboxPage(state, [conv(3, 18), conv(4, 17), conv(2, 19, { unread: 9 })]);
  assert.deepEqual(state.order, [1, 2, 3, 4]);
  // What the tab already knew of a conversation is not replaced by an older page.
  assert.equal(state.convs.get(2).unread, 0);
});

test("a fresh first page keeps the conversations of pages loaded after it", () => {
  const state = aliceWith([conv(1, 20), conv(2, 19)]);
  chat.addInboxPage(state, [conv(3, 18), conv(4, 17)]);
  // Conversation 4 had news: it leads the first page now.
  chat.setConversations(state, [conv(4, 25, { unread: 1 }), conv(1, 20)], { partial: true });
  assert.deepEqual(state.order, [4, 1, 2, 3]);
  assert.equal(state.convs.get(4).unread, 1);
});

test("the whole list (no more pages) drops the conversations that left it", () => {
  const state = aliceWith([conv(1, 20), conv(2, 19)]);
  chat.setConversations(state, [conv(1, 20)]);
  assert.deepEqual(state.order, [1]);
});

test("a big group keeps the members fetched with its detail when the list names a few", () => {
  const everyone = [alice, bob, carol, { id: 4, username: "dave" }, { id: 5, username: "erin" }, { id: 6, username: "finn" }];
  const group = (members) => conv(7, 20, { kind: "group", title: "Team", members, member_count: 6 });
  const state = aliceWith([group(everyone)]);
  chat.setConversations(state, [group(everyone.slice(0, 5))], { partial: true });
  assert.equal(state.convs.get(7).members.length, 6);
});

test("an untitled big group listed with a few members is named by them and the count of the others", () => {
  const listed = [alice, bob, carol, { id: 4, username: "dave" }, { id: 5, username: "erin" }];
  const group = conv(8, 20, { kind: "group", title: "", members: listed, member_count: 12 });
  assert.equal(convName(alice, group), "bob, carol, dave, erin and 7 others");
  assert.equal(convName(alice, { ...group, member_count: 5 }), "bob, carol, dave, erin");
});

test("a group's change frame, which lists every member, sets its member count", () => {
  const state = aliceWith([conv(9, 20, { kind: "group", title: "", members: [alice, bob, carol], member_count: 9 })]);
  chat.onConversationUpdated(state, {
    type: "conversation.updated",
    conversation: { id: 9, kind: "group", title: "", members: [alice, bob, carol] },
    change: { kind: "removed", by: bob },
  });
  assert.equal(state.convs.get(9).member_count, 3);
  assert.equal(convName(alice, state.convs.get(9)), "bob, carol");
});
