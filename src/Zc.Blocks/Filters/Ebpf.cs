using ZcFlow.Native;

namespace ZcFlow.Filters;

/// <summary>
/// Writes eBPF programs instruction by instruction, with labels for jumps, as the kernel takes them (linux/bpf.h's
/// encoding): what ZcFlow loads through libbpf in place of an object file that clang would have built.
/// </summary>
internal sealed class Ebpf
{
    // Instruction classes, sizes, modes, operations (linux/bpf_common.h, linux/bpf.h).
    private const byte Ld = 0x00, Ldx = 0x01, St = 0x02, Stx = 0x03, Alu32Class = 0x04, Jmp = 0x05, Jmp32 = 0x06, Alu64 = 0x07;
    private const byte Imm = 0x00, MemMode = 0x60, AtomicMode = 0xc0, SourceX = 0x08;
    private const byte PseudoMapFd = 1;

    public enum Size : byte { Word = 0x00, Half = 0x08, Byte = 0x10, Double = 0x18 }

    public enum Op : byte { Add = 0x00, Sub = 0x10, Mul = 0x20, Or = 0x40, And = 0x50, Lsh = 0x60, Rsh = 0x70, Xor = 0xa0, Mov = 0xb0 }

    public enum Cond : byte { Eq = 0x10, Gt = 0x20, Ge = 0x30, Set = 0x40, Ne = 0x50, Lt = 0xa0, Le = 0xb0 }

    /// <summary>Registers: R0 the return value and helpers' result, R1 to R5 arguments (clobbered by calls), R6 to R9 kept, R10 the frame.</summary>
    public const int R0 = 0, R1 = 1, R2 = 2, R3 = 3, R4 = 4, R5 = 5, R6 = 6, R7 = 7, R8 = 8, R9 = 9, Fp = 10;

    /// <summary>Helpers called by number (linux/bpf.h's <c>__BPF_FUNC_MAPPER</c>).</summary>
    public const int MapLookupElem = 1, RedirectMap = 51;

    private readonly List<EbpfInstruction> _code = [];
    private readonly List<(int At, int Label)> _jumps = [];
    private readonly List<int> _labels = [];

    public int Count => _code.Count;

    /// <summary>A place to jump to, marked later with <see cref="Mark"/>.</summary>
    public int Label()
    {
        _labels.Add(-1);
        return _labels.Count - 1;
    }

    public void Mark(int label) => _labels[label] = _code.Count;

    private void Emit(byte code, int dst = 0, int src = 0, short offset = 0, int immediate = 0)
        => _code.Add(new EbpfInstruction { Code = code, Registers = (byte)(dst | src << 4), Offset = offset, Immediate = immediate });

    public void Mov(int dst, int immediate) => Emit((byte)(Alu64 | (byte)Op.Mov), dst, immediate: immediate);

    /// <summary>A 32-bit operation (the result zero-extended), with an immediate or a register: classic BPF's arithmetic.</summary>
    public void Alu32(byte op, int dst, int immediate) => Emit((byte)(Alu32Class | op), dst, immediate: immediate);

    public void Alu32Reg(byte op, int dst, int src) => Emit((byte)(Alu32Class | op | SourceX), dst, src);

    /// <summary>Jumps when the low 32 bits of <paramref name="reg"/> compare so with <paramref name="immediate"/> as 32 bits (classic BPF's compares).</summary>
    public void JumpIf32(Cond cond, int reg, int immediate, int label)
    {
        _jumps.Add((_code.Count, label));
        Emit((byte)(Jmp32 | (byte)cond), reg, immediate: immediate);
    }

    public void JumpIf32Reg(Cond cond, int reg, int other, int label)
    {
        _jumps.Add((_code.Count, label));
        Emit((byte)(Jmp32 | (byte)cond | SourceX), reg, other);
    }

    public void MovReg(int dst, int src) => Emit((byte)(Alu64 | (byte)Op.Mov | SourceX), dst, src);

    public void Alu(Op op, int dst, int immediate) => Emit((byte)(Alu64 | (byte)op), dst, immediate: immediate);

    public void AluReg(Op op, int dst, int src) => Emit((byte)(Alu64 | (byte)op | SourceX), dst, src);

    /// <summary>The low 16, 32 or 64 bits of <paramref name="dst"/> from network to host order (a byte swap on a little-endian host).</summary>
    public void FromBigEndian(int dst, int bits) => Emit((byte)(Alu32Class | 0xd0 | SourceX), dst, immediate: bits);

    /// <summary><paramref name="dst"/> = *(size*)(<paramref name="src"/> + <paramref name="offset"/>).</summary>
    public void Load(Size size, int dst, int src, short offset) => Emit((byte)(Ldx | MemMode | (byte)size), dst, src, offset);

    /// <summary>*(size*)(<paramref name="dst"/> + <paramref name="offset"/>) = <paramref name="src"/>.</summary>
    public void Store(Size size, int dst, short offset, int src) => Emit((byte)(Stx | MemMode | (byte)size), dst, src, offset);

    /// <summary>*(size*)(<paramref name="dst"/> + <paramref name="offset"/>) = <paramref name="immediate"/>.</summary>
    public void StoreImmediate(Size size, int dst, short offset, int immediate) => Emit((byte)(St | MemMode | (byte)size), dst, offset: offset, immediate: immediate);

    /// <summary>*(u64*)(<paramref name="dst"/> + <paramref name="offset"/>) += <paramref name="src"/>, atomically.</summary>
    public void AtomicAdd(int dst, short offset, int src) => Emit((byte)(Stx | AtomicMode | (byte)Size.Double), dst, src, offset, immediate: 0);

    /// <summary><paramref name="dst"/> = the map of descriptor <paramref name="fd"/> (two instruction slots).</summary>
    public void LoadMap(int dst, int fd)
    {
        Emit(Ld | Imm | (byte)Size.Double, dst, PseudoMapFd, immediate: fd);
        Emit(0);
    }

    /// <summary>Jumps to <paramref name="label"/> when <paramref name="reg"/> <paramref name="cond"/> <paramref name="immediate"/>.</summary>
    public void JumpIf(Cond cond, int reg, int immediate, int label)
    {
        _jumps.Add((_code.Count, label));
        Emit((byte)(Jmp | (byte)cond), reg, immediate: immediate);
    }

    /// <summary>Jumps to <paramref name="label"/> when <paramref name="reg"/> <paramref name="cond"/> <paramref name="other"/>.</summary>
    public void JumpIfReg(Cond cond, int reg, int other, int label)
    {
        _jumps.Add((_code.Count, label));
        Emit((byte)(Jmp | (byte)cond | SourceX), reg, other);
    }

    public void Jump(int label)
    {
        _jumps.Add((_code.Count, label));
        Emit(Jmp | 0x00);
    }

    public void Call(int helper) => Emit(Jmp | 0x80, immediate: helper);

    public void Exit() => Emit(Jmp | 0x90);

    /// <summary>Jumps to <paramref name="label"/> when <paramref name="bytes"/> from the packet pointer <paramref name="pointer"/> reach past the frame's end (<paramref name="end"/>), through <paramref name="scratch"/>.</summary>
    public void JumpIfPast(int scratch, int pointer, int bytes, int end, int label)
    {
        MovReg(scratch, pointer);
        Alu(Op.Add, scratch, bytes);
        JumpIfReg(Cond.Gt, scratch, end, label);
    }

    /// <summary>R0 = the value for the key at <c>fp + <paramref name="keyOffset"/></c> in the map <paramref name="fd"/>, or 0 when there is none.</summary>
    public void Lookup(int fd, short keyOffset)
    {
        LoadMap(R1, fd);
        MovReg(R2, Fp);
        Alu(Op.Add, R2, keyOffset);
        Call(MapLookupElem);
    }

    /// <summary>R0 = <paramref name="value"/>, and the program ends.</summary>
    public void Return(uint value)
    {
        Mov(R0, (int)value);
        Exit();
    }

    /// <summary>The instructions, every jump resolved to its label.</summary>
    public EbpfInstruction[] Build()
    {
        EbpfInstruction[] code = [.. _code];
        foreach ((int at, int label) in _jumps)
        {
            int target = _labels[label];
            if (target < 0) throw new InvalidOperationException($"eBPF label {label} was never marked");
            code[at].Offset = checked((short)(target - at - 1));
        }
        return code;
    }
}
