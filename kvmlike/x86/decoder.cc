#include "kvmlike/x86/decoder.h"


namespace kvmlike::x86 {

namespace {

// Per-opcode format: whether a ModRM byte follows and which immediate.
enum : uint8_t {
  kImmNone = 0,
  kImmB = 1,      // 1 byte
  kImmW = 2,      // 2 bytes
  kImmZ = 3,      // operand size (2 or 4)
  kImmMoffs = 4,  // address size (2 or 4)
  kImmPtr = 5,    // operand size offset, then a 2-byte selector
  kImmWB = 6,     // 2 bytes, then 1 byte (ENTER)
  kImmGrp3 = 7,   // F6/F7: TEST (/0, /1) has an immediate of the operand's size
  kImmMask = 7,
  kModRm = 0x40,
  kKnown = 0x80,
};

using Table = std::array<uint8_t, 512>;

constexpr void Set(Table& t, int op, uint8_t attr) { t[op] = attr | kKnown; }
constexpr void SetRange(Table& t, int first, int last, uint8_t attr) {
  for (int op = first; op <= last; ++op) Set(t, op, attr);
}

constexpr void FillOneByte(Table& t) {
  for (int row = 0; row < 0x40; row += 8) {  // ALU rows: r/m forms, AL,Ib, eAX,Iz
    SetRange(t, row, row + 3, kModRm);
    Set(t, row + 4, kImmB);
    Set(t, row + 5, kImmZ);
  }
  for (int op : {0x06, 0x07, 0x0e, 0x16, 0x17, 0x1e, 0x1f, 0x27, 0x2f, 0x37, 0x3f}) Set(t, op, 0);
  SetRange(t, 0x40, 0x61, 0);
  SetRange(t, 0x62, 0x63, kModRm);
  Set(t, 0x68, kImmZ);
  Set(t, 0x69, kModRm | kImmZ);
  Set(t, 0x6a, kImmB);
  Set(t, 0x6b, kModRm | kImmB);
  SetRange(t, 0x6c, 0x6f, 0);
  SetRange(t, 0x70, 0x7f, kImmB);
  Set(t, 0x80, kModRm | kImmB);
  Set(t, 0x81, kModRm | kImmZ);
  SetRange(t, 0x82, 0x83, kModRm | kImmB);
  SetRange(t, 0x84, 0x8f, kModRm);
  SetRange(t, 0x90, 0x99, 0);
  Set(t, 0x9a, kImmPtr);
  SetRange(t, 0x9b, 0x9f, 0);
  SetRange(t, 0xa0, 0xa3, kImmMoffs);
  SetRange(t, 0xa4, 0xa7, 0);
  Set(t, 0xa8, kImmB);
  Set(t, 0xa9, kImmZ);
  SetRange(t, 0xaa, 0xaf, 0);
  SetRange(t, 0xb0, 0xb7, kImmB);
  SetRange(t, 0xb8, 0xbf, kImmZ);
  SetRange(t, 0xc0, 0xc1, kModRm | kImmB);
  Set(t, 0xc2, kImmW);
  Set(t, 0xc3, 0);
  SetRange(t, 0xc4, 0xc5, kModRm);
  Set(t, 0xc6, kModRm | kImmB);
  Set(t, 0xc7, kModRm | kImmZ);
  Set(t, 0xc8, kImmWB);
  Set(t, 0xc9, 0);
  Set(t, 0xca, kImmW);
  SetRange(t, 0xcb, 0xcc, 0);
  Set(t, 0xcd, kImmB);
  SetRange(t, 0xce, 0xcf, 0);
  SetRange(t, 0xd0, 0xd3, kModRm);
  SetRange(t, 0xd4, 0xd5, kImmB);
  SetRange(t, 0xd6, 0xd7, 0);
  SetRange(t, 0xd8, 0xdf, kModRm);
  SetRange(t, 0xe0, 0xe7, kImmB);
  SetRange(t, 0xe8, 0xe9, kImmZ);
  Set(t, 0xea, kImmPtr);
  Set(t, 0xeb, kImmB);
  SetRange(t, 0xec, 0xef, 0);
  Set(t, 0xf1, 0);
  SetRange(t, 0xf4, 0xf5, 0);
  SetRange(t, 0xf6, 0xf7, kModRm | kImmGrp3);
  SetRange(t, 0xf8, 0xfd, 0);
  SetRange(t, 0xfe, 0xff, kModRm);
}

constexpr void FillTwoByte(Table& t) {
  auto two = [&t](int op, uint8_t attr) { Set(t, kTwoByte | op, attr); };
  auto two_range = [&t](int first, int last, uint8_t attr) {
    SetRange(t, kTwoByte | first, kTwoByte | last, attr);
  };
  two_range(0x00, 0x03, kModRm);
  two(0x06, 0);
  two_range(0x08, 0x09, 0);
  two(0x0b, 0);
  two_range(0x18, 0x1f, kModRm);  // hint NOPs
  two_range(0x20, 0x23, kModRm);
  two_range(0x30, 0x33, 0);
  two_range(0x40, 0x4f, kModRm);
  two_range(0x80, 0x8f, kImmZ);
  two_range(0x90, 0x9f, kModRm);
  two_range(0xa0, 0xa2, 0);
  two(0xa3, kModRm);
  two(0xa4, kModRm | kImmB);
  two(0xa5, kModRm);
  two_range(0xa8, 0xa9, 0);
  two(0xab, kModRm);
  two(0xac, kModRm | kImmB);
  two(0xad, kModRm);
  two(0xaf, kModRm);
  two_range(0xb0, 0xb7, kModRm);
  two(0xb9, kModRm);  // UD1
  two(0xba, kModRm | kImmB);
  two_range(0xbb, 0xbf, kModRm);
  two_range(0xc0, 0xc1, kModRm);
  two_range(0xc8, 0xcf, 0);
  two(0xff, kModRm);  // UD0
}

constexpr Table BuildTable() {
  Table t{};
  FillOneByte(t);
  FillTwoByte(t);
  return t;
}

constexpr Table kFormats = BuildTable();

// A cursor over the bytes given; Need() says whether n more bytes exist.
struct Cursor {
  const uint8_t* p;
  uint32_t avail;
  uint32_t pos = 0;
  DecodeStatus short_status = DecodeStatus::kNeedBytes;

  bool Need(uint32_t n) {
    if (pos + n > kMaxInsnLen) {
      short_status = DecodeStatus::kTooLong;
      return false;
    }
    return pos + n <= avail;
  }
  // Little-endian value of the next n (0, 1, 2 or 4) bytes, assembled in a
  // register: copying into a wider variable would stall the load that
  // follows on store forwarding.
  uint32_t Take(uint32_t n) {
    const uint8_t* q = p + pos;
    pos += n;
    switch (n) {
      case 0: return 0;
      case 1: return q[0];
      case 2: return q[0] | (uint32_t{q[1]} << 8);
      default: return q[0] | (uint32_t{q[1]} << 8) | (uint32_t{q[2]} << 16) | (uint32_t{q[3]} << 24);
    }
  }
};

// Returns false (prefix run over) at the first byte that is not a prefix.
bool Prefix(uint8_t b, Insn& out, bool& opsize_flip, bool& addrsize_flip) {
  switch (b) {
    case 0x26: out.seg_override = kEs; return true;
    case 0x2e: out.seg_override = kCs; return true;
    case 0x36: out.seg_override = kSs; return true;
    case 0x3e: out.seg_override = kDs; return true;
    case 0x64: out.seg_override = kFs; return true;
    case 0x65: out.seg_override = kGs; return true;
    case 0x66: opsize_flip = true; return true;
    case 0x67: addrsize_flip = true; return true;
    case 0xf0: out.lock = true; return true;
    case 0xf2:
    case 0xf3: out.rep = b; return true;
    default: return false;
  }
}

constexpr int8_t kBase16[8] = {kRbx, kRbx, kRbp, kRbp, kRsi, kRdi, kRbp, kRbx};
constexpr int8_t kIndex16[8] = {kRsi, kRdi, kRsi, kRdi, kNoReg, kNoReg, kNoReg, kNoReg};

bool MemForm16(Cursor& c, Insn& out) {
  MemForm& m = out.mem;
  if (out.mod == 0 && out.rm == 6) {
    if (!c.Need(2)) return false;
    m.disp = c.Take(2);
    return true;
  }
  m.base = kBase16[out.rm];
  m.index = kIndex16[out.rm];
  if (m.base == kRbp) m.seg = kSs;
  uint32_t n = out.mod == 1 ? 1 : out.mod == 2 ? 2 : 0;
  if (!c.Need(n)) return false;
  if (n == 1) m.disp = static_cast<uint32_t>(static_cast<int8_t>(c.Take(1)));
  if (n == 2) m.disp = c.Take(2);
  return true;
}

bool MemForm32(Cursor& c, Insn& out) {
  MemForm& m = out.mem;
  uint8_t base = out.rm;
  if (out.rm == 4) {
    if (!c.Need(1)) return false;
    uint8_t sib = static_cast<uint8_t>(c.Take(1));
    m.scale = sib >> 6;
    uint8_t index = (sib >> 3) & 7;
    m.index = index == 4 ? kNoReg : static_cast<int8_t>(index);
    base = sib & 7;
  }
  bool disp32_only = out.mod == 0 && base == 5;
  if (!disp32_only) {
    m.base = static_cast<int8_t>(base);
    if (base == kRsp || base == kRbp) m.seg = kSs;
  }
  uint32_t n = disp32_only || out.mod == 2 ? 4 : out.mod == 1 ? 1 : 0;
  if (!c.Need(n)) return false;
  if (n == 1) m.disp = static_cast<uint32_t>(static_cast<int8_t>(c.Take(1)));
  if (n == 4) m.disp = c.Take(4);
  return true;
}

bool ModRm(Cursor& c, Insn& out) {
  if (!c.Need(1)) return false;
  uint8_t b = static_cast<uint8_t>(c.Take(1));
  out.has_modrm = true;
  out.mod = b >> 6;
  out.reg = (b >> 3) & 7;
  out.rm = b & 7;
  if (out.mod == 3) return true;
  out.has_mem = true;
  return out.addr_size == 2 ? MemForm16(c, out) : MemForm32(c, out);
}

uint8_t ImmSize(uint8_t kind, const Insn& out) {
  switch (kind) {
    case kImmB: return 1;
    case kImmW: return 2;
    case kImmZ: return out.op_size;
    case kImmMoffs: return out.addr_size;
    case kImmPtr: return out.op_size;
    case kImmWB: return 2;
    case kImmGrp3: return out.reg < 2 ? ((out.opcode & 1) ? out.op_size : 1) : 0;
    default: return 0;
  }
}

bool Immediates(Cursor& c, uint8_t kind, Insn& out) {
  out.imm_size = ImmSize(kind, out);
  if (!c.Need(out.imm_size)) return false;
  out.imm = c.Take(out.imm_size);
  if (kind == kImmMoffs) {  // the offset is a memory operand, DS-relative
    out.has_mem = true;
    out.mem.disp = out.imm;
  }
  uint32_t second = kind == kImmPtr ? 2 : kind == kImmWB ? 1 : 0;
  if (!c.Need(second)) return false;
  out.imm2 = c.Take(second);
  return true;
}

}  // namespace

DecodeStatus Decode(const uint8_t* bytes, uint32_t avail, bool default32, Insn& out) {
  out = Insn{};
  Cursor c{bytes, avail};
  bool opsize_flip = false, addrsize_flip = false;
  for (;;) {
    if (!c.Need(1)) return c.short_status;
    if (!Prefix(bytes[c.pos], out, opsize_flip, addrsize_flip)) break;
    ++c.pos;
  }
  out.op_size = (default32 != opsize_flip) ? 4 : 2;
  out.addr_size = (default32 != addrsize_flip) ? 4 : 2;

  uint16_t opcode = static_cast<uint16_t>(c.Take(1));
  if (opcode == 0x0f) {
    if (!c.Need(1)) return c.short_status;
    opcode = kTwoByte | static_cast<uint16_t>(c.Take(1));
  }
  out.opcode = opcode;
  uint8_t format = kFormats[opcode];
  if (!(format & kKnown)) {
    out.len = static_cast<uint8_t>(c.pos);
    return DecodeStatus::kUnknown;
  }
  if ((format & kModRm) && !ModRm(c, out)) return c.short_status;
  if (!Immediates(c, format & kImmMask, out)) return c.short_status;
  out.len = static_cast<uint8_t>(c.pos);
  return DecodeStatus::kOk;
}

}  // namespace kvmlike::x86
