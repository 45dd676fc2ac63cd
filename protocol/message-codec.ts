/**
 * Session message <-> plaintext bytes (the content of a sealed envelope).
 * Layout: jsonLength(u32 LE) | UTF-8 JSON | binary attachment. Only `chunk` carries an attachment
 * (its `data`), so tensor bytes never go through JSON. Validated on encode (send) and on decode (receive).
 */
import { concatBytes, fromUtf8, utf8 } from './bytes.ts';
import { describeFirstIssue } from './common/index.ts';
import { ProtocolError } from './errors.ts';
import { PROTOCOL_VERSION, sessionMessageSchema, type SessionMessage } from './messages.ts';

function validate(raw: unknown, direction: 'send' | 'receive'): SessionMessage {
  if (typeof raw === 'object' && raw !== null && 'v' in raw && (raw as { v: unknown }).v !== PROTOCOL_VERSION) {
    throw new ProtocolError('bad_version', `message version ${String((raw as { v: unknown }).v)}`);
  }
  const r = sessionMessageSchema.safeParse(raw);
  if (!r.success) {
    const where = describeFirstIssue(r.error, { root: '' });
    throw new ProtocolError('malformed', `${direction === 'send' ? 'refusing to send' : 'received'} invalid message (${where})`);
  }
  return r.data;
}

export function encodeMessage(msg: SessionMessage): Uint8Array {
  const checked = validate(msg, 'send');
  let attachment: Uint8Array = new Uint8Array(0);
  let body: object = checked;
  if (checked.type === 'chunk') {
    const { data, ...rest } = checked;
    attachment = data;
    body = rest;
  }
  const json = utf8(JSON.stringify(body));
  const head = new Uint8Array(4);
  new DataView(head.buffer).setUint32(0, json.length, true);
  return concatBytes(head, json, attachment);
}

export function decodeMessage(plain: Uint8Array): SessionMessage {
  if (plain.length < 4) throw new ProtocolError('malformed', 'message shorter than its length prefix');
  const jsonLength = new DataView(plain.buffer, plain.byteOffset, plain.byteLength).getUint32(0, true);
  if (jsonLength > plain.length - 4) throw new ProtocolError('malformed', 'message JSON length exceeds the message');
  let raw: unknown;
  try {
    raw = JSON.parse(fromUtf8(plain.subarray(4, 4 + jsonLength)));
  } catch (e) {
    if (e instanceof ProtocolError) throw e;
    throw new ProtocolError('malformed', 'message JSON does not parse');
  }
  const attachment = plain.subarray(4 + jsonLength);
  if (typeof raw === 'object' && raw !== null && (raw as { type?: unknown }).type === 'chunk') {
    (raw as { data?: Uint8Array }).data = attachment;
  } else if (attachment.length > 0) {
    throw new ProtocolError('malformed', 'unexpected binary attachment');
  }
  return validate(raw, 'receive');
}
