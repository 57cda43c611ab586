// Packet types shared by the capture, the decoder and the verifier.

export type LinkType = 'ETHERNET' | 'RAW' | 'LINUX_SLL';

/** One frame as captured: timestamp and the raw bytes. */
export interface RawFrame {
  /**
   * Capture time, nanoseconds since the Unix epoch: the kernel's
   * CLOCK_REALTIME when it received (or sent) the frame, one clock for every
   * network namespace of a host. A bigint: nanoseconds since 1970 need 61
   * bits, more than a double holds exactly. Frames read from a
   * microsecond pcap file end in 000.
   */
  tsNanos: bigint;
  /** Original length on the wire (>= data.length when truncated). */
  wireLength: number;
  data: Buffer;
}

export interface IpHeader {
  version: 4 | 6;
  src: string;
  dst: string;
  /** IP protocol number of the payload (after IPv6 extension headers). */
  protocol: number;
  ttl: number;
}

export interface DecodedPacket {
  /** The frame's capture time (RawFrame.tsNanos). */
  tsNanos: bigint;
  /** Ethernet addresses, lower-case "aa:bb:cc:dd:ee:ff"; absent for RAW link type. */
  srcMac?: string;
  dstMac?: string;
  /** Ethertype of the frame (0x0800 IPv4, 0x86dd IPv6, 0x0806 ARP …). */
  etherType?: number;
  /** Outer IP header when the packet is IP-in-IP (protocol 4) or IPv6-in-IP. */
  outer?: IpHeader;
  /** The (inner, if encapsulated) IP header. */
  ip?: IpHeader;
  transport?:
    | { kind: 'tcp'; srcPort: number; dstPort: number; flags: TcpFlags; seq: number; ack: number; payloadLength: number }
    | { kind: 'udp'; srcPort: number; dstPort: number; payloadLength: number }
    | { kind: 'other' };
  /** Set when any layer was cut short or malformed: what was wrong. Decoding never throws. */
  error?: string;
}

export interface TcpFlags {
  syn: boolean;
  ack: boolean;
  fin: boolean;
  rst: boolean;
  psh: boolean;
}

/** A capture of one lab host, decoded. */
export interface HostCapture {
  host: string;
  device: string;
  /** MAC address of the captured interface (to tell frames addressed to this host). */
  mac: string;
  linkType: LinkType;
  frames: RawFrame[];
  packets: DecodedPacket[];
  /** pcap file written for this host, when written. */
  pcapPath?: string;
}
