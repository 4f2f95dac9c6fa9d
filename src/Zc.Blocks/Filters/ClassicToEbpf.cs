using ZcFlow.Native;
using static ZcFlow.Filters.Ebpf;

namespace ZcFlow.Filters;

/// <summary>
/// A classic BPF program (what <c>pcap_compile</c> makes of a tcpdump expression) written again as eBPF inside an XDP
/// program, as cloudflare's cbpfc does: A and X in registers, the scratch memory on the stack, every packet load checked
/// against the frame's end first (a load past it ends the filter with 0, as in the kernel's classic BPF), division by a
/// zero X likewise, compares and arithmetic on 32 bits. The frame is the whole XDP buffer: its length is what a classic
/// filter's wire length would be. Loads of the kernel's ancillary data (<c>SKF_AD_*</c>) have no XDP counterpart and are refused.
/// </summary>
internal static class ClassicToEbpf
{
    // Registers: the frame's start and end (R7, R8: the caller's), A in R2, X in R3, R4 and R5 for loads; M[] at fp-128.
    private const int A = R2, X = R3;
    private const short Memory = -128;

    /// <summary>
    /// Writes <paramref name="program"/> into <paramref name="a"/>: it jumps to <paramref name="accept"/> when the filter keeps
    /// the frame and to <paramref name="reject"/> when not. R7 and R8 hold the frame's start and end; R2 to R5 are used.
    /// </summary>
    public static void Emit(Ebpf a, ReadOnlySpan<BpfInstruction> program, int accept, int reject)
    {
        int[] at = [.. Enumerable.Range(0, program.Length).Select(_ => a.Label())];
        a.Mov(A, 0);
        a.Mov(X, 0);
        for (short m = Memory; m < Memory + 64; m += 8) a.StoreImmediate(Size.Double, Fp, m, 0);
        for (int i = 0; i < program.Length; i++)
        {
            a.Mark(at[i]);
            BpfInstruction c = program[i];
            int k = unchecked((int)c.K);
            int cls = c.Code & 0x07, size = c.Code & 0x18, mode = c.Code & 0xe0, op = c.Code & 0xf0, src = c.Code & 0x08;
            switch (cls)
            {
                case 0x00 or 0x01:   // LD, LDX
                {
                    int dst = cls == 0x00 ? A : X;
                    if (mode == 0x00) a.Alu32((byte)Op.Mov, dst, k);                     // IMM
                    else if (mode == 0x60) a.Load(Size.Word, dst, Fp, Slot(c.K));        // MEM
                    else if (mode == 0x80)                                                // LEN
                    {
                        a.MovReg(dst, R8);
                        a.AluReg(Op.Sub, dst, R7);
                    }
                    else if (cls == 0x01 && mode == 0xa0)                                // MSH: X = 4 * (P[k] & 0xf)
                    {
                        Load(a, Size.Byte, X, k, indexed: false, reject);
                        a.Alu32((byte)Op.And, X, 0x0F);
                        a.Alu32((byte)Op.Lsh, X, 2);
                    }
                    else if (cls == 0x00 && mode is 0x20 or 0x40)                        // ABS, IND
                    {
                        if (c.K >= 0xfffff000) throw new NotSupportedException($"the filter reads the kernel's ancillary data (instruction {i}), which an XDP program has not");
                        Load(a, size == 0x00 ? Size.Word : size == 0x08 ? Size.Half : Size.Byte, A, k, mode == 0x40, reject);
                    }
                    else throw new NotSupportedException($"classic BPF instruction {i} (code 0x{c.Code:x2}) has no translation");
                    break;
                }
                case 0x02: a.Store(Size.Word, Fp, Slot(c.K), A); break;            // ST
                case 0x03: a.Store(Size.Word, Fp, Slot(c.K), X); break;            // STX
                case 0x04:                                                          // ALU
                    if (op == 0x80) { a.Alu32(0x80, A, 0); break; }                 // NEG
                    if (op is 0x30 or 0x90)
                    {
                        if (src != 0) a.JumpIf32(Cond.Eq, X, 0, reject);
                        else if (k == 0) { a.Jump(reject); break; }
                    }
                    if (op is not (0x00 or 0x10 or 0x20 or 0x30 or 0x40 or 0x50 or 0x60 or 0x70 or 0x90 or 0xa0))
                        throw new NotSupportedException($"classic BPF instruction {i} (code 0x{c.Code:x2}) has no translation");
                    if (src != 0) a.Alu32Reg((byte)op, A, X);
                    else a.Alu32((byte)op, A, k);
                    break;
                case 0x05:                                                          // JMP
                    if (op == 0x00)
                    {
                        a.Jump(Target(at, i + 1 + k, accept, program.Length));
                        break;
                    }
                    Cond cond = op switch { 0x10 => Cond.Eq, 0x20 => Cond.Gt, 0x30 => Cond.Ge, 0x40 => Cond.Set, _ => throw new NotSupportedException($"classic BPF instruction {i} (code 0x{c.Code:x2}) has no translation") };
                    int yes = Target(at, i + 1 + c.JumpTrue, accept, program.Length), no = Target(at, i + 1 + c.JumpFalse, accept, program.Length);
                    if (src != 0) a.JumpIf32Reg(cond, A, X, yes);
                    else a.JumpIf32(cond, A, k, yes);
                    a.Jump(no);
                    break;
                case 0x06:                                                          // RET
                    if ((c.Code & 0x18) == 0x10) a.JumpIf32(Cond.Eq, A, 0, reject); // RET A
                    else if (c.K == 0) { a.Jump(reject); break; }
                    a.Jump(accept);
                    break;
                case 0x07:                                                          // MISC: TAX, TXA
                    if ((c.Code & 0xf8) == 0x00) a.MovReg(X, A);
                    else a.MovReg(A, X);
                    break;
            }
        }
        // The last instruction returns (pcap_compile's always does): code after it would be unreachable, which the verifier refuses.
        if (program.Length == 0 || (program[^1].Code & 0x07) != 0x06) throw new NotSupportedException("the filter does not end with a return");
    }

    private static short Slot(uint k) => k < 16 ? (short)(Memory + 4 * (int)k) : throw new NotSupportedException($"scratch memory M[{k}] is past M[15]");

    private static int Target(int[] at, int index, int accept, int length) => index < length ? at[index] : throw new NotSupportedException($"a jump to instruction {index}, past the program's end");

    // dst = the big-endian value of `size` at offset k (+ X when indexed), or the filter rejects when it lies past the end.
    private static void Load(Ebpf a, Size size, int dst, int k, bool indexed, int reject)
    {
        int bytes = size switch { Size.Word => 4, Size.Half => 2, _ => 1 };
        a.MovReg(R4, R7);
        if (indexed)
        {
            a.MovReg(R5, X);
            a.Alu32((byte)Op.Add, R5, k);              // X + k on 32 bits, as classic BPF adds
            a.JumpIf(Cond.Gt, R5, 0xFFFF, reject);   // bounded for the verifier, and past any frame
            a.AluReg(Op.Add, R4, R5);
        }
        else
        {
            if ((uint)k > 0xFFFF) { a.Jump(reject); return; }
            a.Alu(Op.Add, R4, k);
        }
        a.JumpIfPast(R5, R4, bytes, R8, reject);
        a.Load(size, dst, R4, 0);
        if (bytes > 1) a.FromBigEndian(dst, 8 * bytes);
    }
}
