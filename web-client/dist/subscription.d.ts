import { Emitter } from './emitter.js';
import type { WireInfo, WirePublication } from './protocol.js';
import type { ClientInfo, ErrorEvent, HistoryOptions, HistoryResult, PresenceResult, PresenceStatsResult, Publication, SubscribedEvent, UnsubscribedEvent } from './types.js';
/** Live publications held while a subscribe is in flight (native mode may deliver them
 * before the reply). Past this the oldest are dropped and the subscription resubscribes
 * to recover them: memory stays bounded however fast the channel is. */
export declare const MAX_BUFFERED_PUBLICATIONS = 1000;
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
/** Converts the server's client info. */
export declare function toClientInfo(info: WireInfo | undefined): ClientInfo;
/** Converts the server's publication. */
export declare function toPublication(channel: string, p: WirePublication): Publication;
/** A subscription to one channel. */
export declare class Subscription extends Emitter<SubscriptionEvents> {
    private readonly host;
    /** The channel. */
    readonly channel: string;
    private readonly options;
    /** The state. */
    state: SubscriptionState;
    private readonly position;
    private buffered;
    private overflowed;
    /** The delivery asked for. */
    get delivery(): 'stream' | 'datagram';
    /** The last stream position seen (offset 0 and epoch '' when the channel keeps no history). */
    get streamPosition(): {
        offset: number;
        epoch: string;
    };
    /** Publishes into this channel (needs `allow_publish_for_subscriber` or similar). */
    publish(data: unknown): Promise<void>;
    /** Reads this channel's history. */
    history(options?: HistoryOptions): Promise<HistoryResult>;
    /** Who is subscribed to this channel. */
    presence(): Promise<PresenceResult>;
    /** How many are subscribed to this channel. */
    presenceStats(): Promise<PresenceStatsResult>;
    /** Leaves the channel for good. */
    unsubscribe(): void;
    private setState;
    private finish;
}
