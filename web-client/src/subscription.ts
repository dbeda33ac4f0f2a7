// One channel subscription: its handlers, its state, and its place in the channel's stream
// (position.ts). The client (client.ts) sends its subscribe command on every connect and
// hands it replies and pushes; the subscription decides what reaches the application, so
// that after a reconnect nothing is missed and nothing arrives twice.

import { Emitter } from './emitter.js';
import { StreamPosition } from './position.js';
import type { WireInfo, WirePublication, WireSubscribeRequest, WireSubscribeResult } from './protocol.js';
import { RESUBSCRIBE_CODE_MIN } from './protocol.js';
import type { TransportName } from './transport.js';
import type {
  ClientInfo, ErrorEvent, HistoryOptions, HistoryResult, PresenceResult, PresenceStatsResult, Publication,
  SubscribedEvent, UnsubscribedEvent,
} from './types.js';

/** Live publications held while a subscribe is in flight (native mode may deliver them
 * before the reply). Past this the oldest are dropped and the subscription resubscribes
 * to recover them: memory stays bounded however fast the channel is. */
export const MAX_BUFFERED_PUBLICATIONS = 1000;

/** A subscription's states. */
export type SubscriptionState = 'unsubscribed' | 'subscribing' | 'subscribed';

/** Options of `client.subscribe(channel, options)`. */
export interface SubscribeOptions {
  /** Each publication, in order, exactly once (also those recovered after a reconnect). */
  onPublication?: (publication: Publication) => void;
  /** Someone subscribed (needs join/leave on the channel's namespace). */
  onJoin?: (info: ClientInfo) => void;
  /** Someone left. */
  onLeave?: (info: ClientInfo) => void;
  /** Subscribed (again, after each reconnect). */
  onSubscribed?: (event: SubscribedEvent) => void;
  /** Unsubscribed for good (by `unsubscribe()` or the server). */
  onUnsubscribed?: (event: UnsubscribedEvent) => void;
  /** A subscribe failed. */
  onError?: (event: ErrorEvent) => void;
  /** Recover missed publications after a reconnect (default true; needs history on the
   * channel's namespace). */
  recover?: boolean;
  /** Ask for join/leave pushes (default: when `onJoin` or `onLeave` is given). */
  joinLeave?: boolean;
  /** `'datagram'` for latest-value channels (namespace `delivery = "datagram"`): over
   * WebTransport their publications arrive as QUIC datagrams, may be lost, and older
   * values never overwrite newer ones; elsewhere they arrive like any other. */
  delivery?: 'stream' | 'datagram';
  /** Subscription token (private `$` channels). */
  token?: string;
  /** Custom subscribe data. */
  data?: unknown;
}

/** Events of a subscription. */
export interface SubscriptionEvents {
  publication: (publication: Publication) => void;
  join: (info: ClientInfo) => void;
  leave: (info: ClientInfo) => void;
  subscribed: (event: SubscribedEvent) => void;
  unsubscribed: (event: UnsubscribedEvent) => void;
  error: (event: ErrorEvent) => void;
  state: (state: SubscriptionState) => void;
}

/** @internal What a subscription needs from its client. */
export interface SubscriptionHost {
  /** Subscribes again on the current connection (unsubscribing first when the server
   * still has the subscription). */
  resubscribe(sub: Subscription, stillSubscribed: boolean): void;
  remove(sub: Subscription): void;
  publish(channel: string, data: unknown): Promise<void>;
  history(channel: string, options?: HistoryOptions): Promise<HistoryResult>;
  presence(channel: string): Promise<PresenceResult>;
  presenceStats(channel: string): Promise<PresenceStatsResult>;
}

/** Converts the server's client info. */
export function toClientInfo(info: WireInfo | undefined): ClientInfo {
  const out: ClientInfo = { user: info?.user ?? '', client: info?.client ?? '' };
  if (info?.conn_info !== undefined) out.connInfo = info.conn_info;
  if (info?.chan_info !== undefined) out.chanInfo = info.chan_info;
  return out;
}

/** Converts the server's publication. */
export function toPublication(channel: string, p: WirePublication): Publication {
  const out: Publication = { channel, data: p.data ?? null, offset: p.offset ?? 0 };
  if (p.info) out.info = toClientInfo(p.info);
  if (p.tags) out.tags = p.tags;
  return out;
}

/** A subscription to one channel. */
export class Subscription extends Emitter<SubscriptionEvents> {
  /** The state. */
  state: SubscriptionState = 'subscribing';
  private readonly position: StreamPosition;
  private buffered: WirePublication[] = [];
  private overflowed = false;

  /** @internal */
  constructor(
    private readonly host: SubscriptionHost,
    /** The channel. */
    readonly channel: string,
    private readonly options: SubscribeOptions = {},
  ) {
    super();
    this.position = new StreamPosition(options.delivery === 'datagram');
    if (options.onPublication) this.on('publication', options.onPublication);
    if (options.onJoin) this.on('join', options.onJoin);
    if (options.onLeave) this.on('leave', options.onLeave);
    if (options.onSubscribed) this.on('subscribed', options.onSubscribed);
    if (options.onUnsubscribed) this.on('unsubscribed', options.onUnsubscribed);
    if (options.onError) this.on('error', options.onError);
  }

  /** The delivery asked for. */
  get delivery(): 'stream' | 'datagram' {
    return this.options.delivery === 'datagram' ? 'datagram' : 'stream';
  }

  /** The last stream position seen (offset 0 and epoch '' when the channel keeps no history). */
  get streamPosition(): { offset: number; epoch: string } {
    return { offset: this.position.offset, epoch: this.position.epoch };
  }

  /** Publishes into this channel (needs `allow_publish_for_subscriber` or similar). */
  publish(data: unknown): Promise<void> {
    return this.host.publish(this.channel, data);
  }

  /** Reads this channel's history. */
  history(options?: HistoryOptions): Promise<HistoryResult> {
    return this.host.history(this.channel, options);
  }

  /** Who is subscribed to this channel. */
  presence(): Promise<PresenceResult> {
    return this.host.presence(this.channel);
  }

  /** How many are subscribed to this channel. */
  presenceStats(): Promise<PresenceStatsResult> {
    return this.host.presenceStats(this.channel);
  }

  /** Leaves the channel for good. */
  unsubscribe(): void {
    if (this.state === 'unsubscribed') return;
    this.host.remove(this);
    this.finish(0, 'unsubscribe called');
  }

  private setState(state: SubscriptionState): void {
    if (this.state === state) return;
    this.state = state;
    this.emit('state', state);
  }

  private finish(code: number, reason: string): void {
    this.buffered = [];
    this.setState('unsubscribed');
    this.emit('unsubscribed', { channel: this.channel, code, reason });
  }

  /** @internal The subscribe request for the next (re)subscribe. */
  request(): WireSubscribeRequest {
    const r: WireSubscribeRequest = { channel: this.channel };
    const datagram = this.options.delivery === 'datagram';
    const recover = this.options.recover !== false && !datagram;
    if (recover) {
      r.recoverable = true;
      const from = this.position.recoverFrom();
      if (from) {
        r.recover = true;
        r.offset = from.offset;
        r.epoch = from.epoch;
      }
    }
    const joinLeave = this.options.joinLeave ?? !!(this.options.onJoin || this.options.onLeave);
    if (joinLeave) r.join_leave = true;
    if (this.options.token) r.token = this.options.token;
    if (this.options.data !== undefined) r.data = this.options.data;
    return r;
  }

  /** @internal The connection is gone: wait for the next subscribe. */
  lost(): void {
    if (this.state === 'subscribed') this.setState('subscribing');
    this.buffered = [];
    this.overflowed = false;
  }

  /** @internal The subscribe succeeded. */
  subscribed(result: WireSubscribeResult, transport: TransportName, datagrams: boolean): void {
    if (this.state === 'unsubscribed') return;
    const wasRecovering = !!result.was_recovering;
    // JSON leaves false fields out: a recovering result without `recovered` did not recover.
    const recovered = wasRecovering ? !!result.recovered : true;
    const fromResult = this.position.apply(result);
    const held = this.buffered;
    this.buffered = [];
    this.setState('subscribed');
    this.emit('subscribed', {
      channel: this.channel,
      wasRecovering,
      recovered,
      recoverable: !!result.recoverable,
      offset: this.position.offset,
      epoch: this.position.epoch,
      delivery: datagrams && this.options.delivery === 'datagram' ? 'datagram' : 'stream',
      transport,
    });
    for (const p of fromResult) this.emit('publication', toPublication(this.channel, p));
    for (const p of held) {
      if (this.state !== 'subscribed') return;
      this.publication(p);
    }
    if (this.overflowed) {
      this.overflowed = false;
      this.setState('subscribing');
      this.host.resubscribe(this, true);
    }
  }

  /** @internal The subscribe failed: `retry` when the client will try again on its own. */
  failed(code: number, message: string, retry: boolean): void {
    this.emit('error', { type: 'subscribe', code, message, channel: this.channel });
    if (!retry) {
      this.host.remove(this);
      this.finish(code, message);
    }
  }

  /** @internal A publication arrived for this channel. */
  publication(p: WirePublication): void {
    if (this.state === 'subscribing') {
      if (this.buffered.length >= MAX_BUFFERED_PUBLICATIONS) {
        this.buffered.shift();
        this.overflowed = true;
      }
      this.buffered.push(p);
      return;
    }
    if (this.state !== 'subscribed') return;
    switch (this.position.check(p.offset)) {
      case 'deliver':
        this.emit('publication', toPublication(this.channel, p));
        return;
      case 'gap':
        // Something was lost on the way: resubscribe from the position to get it back.
        this.setState('subscribing');
        this.buffered = [p];
        this.host.resubscribe(this, true);
        return;
      default:
        return; // a duplicate of a recovered publication, or a stale datagram
    }
  }

  /** @internal Someone joined. */
  joined(info: WireInfo | undefined): void {
    if (this.state === 'subscribed') this.emit('join', toClientInfo(info));
  }

  /** @internal Someone left. */
  left(info: WireInfo | undefined): void {
    if (this.state === 'subscribed') this.emit('leave', toClientInfo(info));
  }

  /** @internal The server ended the subscription: codes from 2500 mean "subscribe again". */
  unsubscribedByServer(code: number, reason: string): void {
    if (code >= RESUBSCRIBE_CODE_MIN) {
      this.setState('subscribing');
      this.host.resubscribe(this, false);
      return;
    }
    this.host.remove(this);
    this.finish(code, reason);
  }
}
