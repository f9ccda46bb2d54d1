/*
 * vlan-bpf: attach a tiny tc program that pushes or pops an 802.1Q tag, for the netns harness.
 *
 * This kernel has no 8021q module and no tc vlan action, but it has cls_bpf and the
 * bpf_skb_vlan_push/pop helpers. The program is six hand-assembled eBPF instructions, so no
 * clang is needed: this file only loads them with bpf(2), pins them on a bpffs mounted in a
 * private mount namespace (gone when this process exits) and runs
 *   tc -n NETNS filter add dev DEV {ingress|egress} pref PREF bpf da object-pinned PIN
 * The filter keeps the program alive after the pin disappears. The program returns
 * TC_ACT_UNSPEC, so the next filter on the hook (the harness's random loss) still runs.
 *
 * usage: vlan-bpf NETNS DEV ingress|egress PREF push VID
 *        vlan-bpf NETNS DEV ingress|egress PREF pop
 * Test-only code: compiled by test/harness at test time with `gcc -O1 -o ... vlan-bpf.c`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/bpf.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int sys_bpf(int cmd, union bpf_attr *attr) {
  return (int)syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

static struct bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  struct bpf_insn i;
  memset(&i, 0, sizeof(i));
  i.code = code;
  i.dst_reg = dst;
  i.src_reg = src;
  i.off = off;
  i.imm = imm;
  return i;
}

int main(int argc, char **argv) {
  if (argc < 6 || (strcmp(argv[5], "push") == 0 && argc < 7)) {
    fprintf(stderr, "usage: vlan-bpf NETNS DEV ingress|egress PREF push VID | pop\n");
    return 2;
  }
  const char *netns = argv[1], *dev = argv[2], *hook = argv[3], *pref = argv[4];
  int push = strcmp(argv[5], "push") == 0;
  struct bpf_insn prog[8];
  int n = 0;
  if (push) {
    int vid = atoi(argv[6]);
    if (vid < 1 || vid > 4094) {
      fprintf(stderr, "vlan-bpf: bad VID %s\n", argv[6]);
      return 2;
    }
    /* r1 = skb (already); r2 = htons(ETH_P_8021Q); r3 = vid; call bpf_skb_vlan_push */
    prog[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_2, 0, 0, (int32_t)__builtin_bswap16(0x8100));
    prog[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_3, 0, 0, vid);
    prog[n++] = insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_skb_vlan_push);
  } else {
    prog[n++] = insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_skb_vlan_pop);
  }
  prog[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, -1); /* TC_ACT_UNSPEC */
  prog[n++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);

  static char log[65536];
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.prog_type = BPF_PROG_TYPE_SCHED_CLS;
  attr.insns = (uint64_t)(uintptr_t)prog;
  attr.insn_cnt = (uint32_t)n;
  attr.license = (uint64_t)(uintptr_t)"GPL";
  attr.log_buf = (uint64_t)(uintptr_t)log;
  attr.log_size = sizeof(log);
  attr.log_level = 1;
  int fd = sys_bpf(BPF_PROG_LOAD, &attr);
  if (fd < 0) {
    fprintf(stderr, "vlan-bpf: BPF_PROG_LOAD: %s\n%s\n", strerror(errno), log);
    return 1;
  }

  /* A private mount namespace: the bpffs and its pin vanish when this process exits. */
  if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
    fprintf(stderr, "vlan-bpf: private mount namespace: %s\n", strerror(errno));
    return 1;
  }
  char dir[] = "/tmp/pf-vlan-bpf-XXXXXX";
  if (mkdtemp(dir) == NULL || mount("bpf", dir, "bpf", 0, NULL) != 0) {
    fprintf(stderr, "vlan-bpf: mount bpffs: %s\n", strerror(errno));
    return 1;
  }
  char pin[sizeof(dir) + 8];
  snprintf(pin, sizeof(pin), "%s/prog", dir);
  memset(&attr, 0, sizeof(attr));
  attr.pathname = (uint64_t)(uintptr_t)pin;
  attr.bpf_fd = (uint32_t)fd;
  int rc = 1;
  if (sys_bpf(BPF_OBJ_PIN, &attr) != 0) {
    fprintf(stderr, "vlan-bpf: BPF_OBJ_PIN: %s\n", strerror(errno));
  } else {
    pid_t child = fork();
    if (child == 0) {
      execlp("tc", "tc", "-n", netns, "filter", "add", "dev", dev, hook, "pref", pref, "bpf", "da",
             "object-pinned", pin, (char *)NULL);
      _exit(127);
    }
    int status = 0;
    if (child > 0 && waitpid(child, &status, 0) == child && WIFEXITED(status)) rc = WEXITSTATUS(status);
    unlink(pin);
  }
  umount2(dir, MNT_DETACH);
  rmdir(dir);
  return rc;
}
