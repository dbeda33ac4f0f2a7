// One channel subscription: its handlers, its state, and its place in the channel's stream
// (position.ts). The client (client.ts) sends its subscribe command on every connect and
// hands it replies and pushes; the subscription decides what reaches the application, so
// that after a reconnect nothing is missed and nothing arrives twice.
import { Emitter } from './emitter.js';
import { StreamPosition } from './position.js';
import { RESUBSCRIBE_CODE_MIN } from './protocol.js';
/** Live publications held while a subscribe is in flight (native mode may deliver them
 * before the reply). Past this the oldest are dropped and the subscription resubscribes
 * to recover them: memory stays bounded however fast the channel is. */
export const MAX_BUFFERED_PUBLICATIONS = 1000;
/** Converts the server's client info. */
export function toClientInfo(info) {
    const out = { user: info?.user ?? '', client: info?.client ?? '' };
    if (info?.conn_info !== undefined)
        out.connInfo = info.conn_info;
    if (info?.chan_info !== undefined)
        out.chanInfo = info.chan_info;
    return out;
}
/** Converts the server's publication. */
export function toPublication(channel, p) {
    const out = { channel, data: p.data ?? null, offset: p.offset ?? 0 };
    if (p.info)
        out.info = toClientInfo(p.info);
    if (p.tags)
        out.tags = p.tags;
    return out;
}
/** A subscription to one channel. */
export class Subscription extends Emitter {
    host;
    channel;
    options;
    /** The state. */
    state = 'subscribing';
    position;
    buffered = [];
    overflowed = false;
    /** @internal */
    constructor(host, 
    /** The channel. */
    channel, options = {}) {
        super();
        this.host = host;
        this.channel = channel;
        this.options = options;
        this.position = new StreamPosition(options.delivery === 'datagram');
        if (options.onPublication)
            this.on('publication', options.onPublication);
        if (options.onJoin)
            this.on('join', options.onJoin);
        if (options.onLeave)
            this.on('leave', options.onLeave);
        if (options.onSubscribed)
            this.on('subscribed', options.onSubscribed);
        if (options.onUnsubscribed)
            this.on('unsubscribed', options.onUnsubscribed);
        if (options.onError)
            this.on('error', options.onError);
    }
    /** The delivery asked for. */
    get delivery() {
        return this.options.delivery === 'datagram' ? 'datagram' : 'stream';
    }
    /** The last stream position seen (offset 0 and epoch '' when the channel keeps no history). */
    get streamPosition() {
        return { offset: this.position.offset, epoch: this.position.epoch };
    }
    /** Publishes into this channel (needs `allow_publish_for_subscriber` or similar). */
    publish(data) {
        return this.host.publish(this.channel, data);
    }
    /** Reads this channel's history. */
    history(options) {
        return this.host.history(this.channel, options);
    }
    /** Who is subscribed to this channel. */
    presence() {
        return this.host.presence(this.channel);
    }
    /** How many are subscribed to this channel. */
    presenceStats() {
        return this.host.presenceStats(this.channel);
    }
    /** Leaves the channel for good. */
    unsubscribe() {
        if (this.state === 'unsubscribed')
            return;
        this.host.remove(this);
        this.finish(0, 'unsubscribe called');
    }
    setState(state) {
        if (this.state === state)
            return;
        this.state = state;
        this.emit('state', state);
    }
    finish(code, reason) {
        this.buffered = [];
        this.setState('unsubscribed');
        this.emit('unsubscribed', { channel: this.channel, code, reason });
    }
    /** @internal The subscribe request for the next (re)subscribe. */
    request() {
        const r = { channel: this.channel };
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
        if (joinLeave)
            r.join_leave = true;
        if (this.options.token)
            r.token = this.options.token;
        if (this.options.data !== undefined)
            r.data = this.options.data;
        return r;
    }
    /** @internal The connection is gone: wait for the next subscribe. */
    lost() {
        if (this.state === 'subscribed')
            this.setState('subscribing');
        this.buffered = [];
        this.overflowed = false;
    }
    /** @internal The subscribe succeeded. */
    subscribed(result, transport, datagrams) {
        if (this.state === 'unsubscribed')
            return;
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
        for (const p of fromResult)
            this.emit('publication', toPublication(this.channel, p));
        for (const p of held) {
            if (this.state !== 'subscribed')
                return;
            this.publication(p);
        }
        if (this.overflowed) {
            this.overflowed = false;
            this.setState('subscribing');
            this.host.resubscribe(this, true);
        }
    }
    /** @internal The subscribe failed: `retry` when the client will try again on its own. */
    failed(code, message, retry) {
        this.emit('error', { type: 'subscribe', code, message, channel: this.channel });
        if (!retry) {
            this.host.remove(this);
            this.finish(code, message);
        }
    }
    /** @internal A publication arrived for this channel. */
    publication(p) {
        if (this.state === 'subscribing') {
            if (this.buffered.length >= MAX_BUFFERED_PUBLICATIONS) {
                this.buffered.shift();
                this.overflowed = true;
            }
            this.buffered.push(p);
            return;
        }
        if (this.state !== 'subscribed')
            return;
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
    joined(info) {
        if (this.state === 'subscribed')
            this.emit('join', toClientInfo(info));
    }
    /** @internal Someone left. */
    left(info) {
        if (this.state === 'subscribed')
            this.emit('leave', toClientInfo(info));
    }
    /** @internal The server ended the subscription: codes from 2500 mean "subscribe again". */
    unsubscribedByServer(code, reason) {
        if (code >= RESUBSCRIBE_CODE_MIN) {
            this.setState('subscribing');
            this.host.resubscribe(this, false);
            return;
        }
        this.host.remove(this);
        this.finish(code, reason);
    }
}
