/* The read floor: a bare libpcap read loop over a capture file, touching every packet's
 * header and first byte. bench/run.sh compares tcprace with it (wall time and instructions).
 *
 *   cc -O2 -o bench/out/readloop bench/readloop.c -lpcap
 *   bench/out/readloop FILE
 */
#include <pcap/pcap.h>
#include <stdio.h>

int main(int argc, char **argv) {
    char err[PCAP_ERRBUF_SIZE];
    if (argc != 2) {
        fprintf(stderr, "usage: readloop FILE\n");
        return 2;
    }
    pcap_t *p = pcap_open_offline(argv[1], err);
    if (!p) {
        fprintf(stderr, "readloop: %s\n", err);
        return 2;
    }
    struct pcap_pkthdr *h;
    const u_char *data;
    unsigned long packets = 0, bytes = 0, first = 0;
    int r;
    while ((r = pcap_next_ex(p, &h, &data)) == 1) {
        packets++;
        bytes += h->caplen;
        if (h->caplen > 0) first += data[0];
    }
    if (r == -1) {
        fprintf(stderr, "readloop: %s\n", pcap_geterr(p));
        return 2;
    }
    printf("%lu packets, %lu bytes (%lu)\n", packets, bytes, first);
    pcap_close(p);
    return 0;
}
