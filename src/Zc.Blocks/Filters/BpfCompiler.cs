using System.Buffers.Binary;
using System.Reflection;
using System.Reflection.Emit;
using System.Runtime.CompilerServices;
using ZcFlow.Native;

namespace ZcFlow.Filters;

/// <summary>A classic BPF program compiled to a method: the packet's bytes, its length on the wire and as captured; what it accepts, 0 to reject.</summary>
internal unsafe delegate uint BpfProgramMethod(byte* packet, uint wireLength, uint capturedLength);

/// <summary>
/// Compiles a classic BPF program, as libpcap's <c>pcap_compile</c> makes it, to IL, which the JIT turns into machine code:
/// no instruction is decoded per packet. It keeps <c>bpf_filter</c>'s rules: a load past the captured bytes, and a
/// division by zero, reject the packet. A program with an instruction it does not know (an extension), or a jump out of
/// the program, is not compiled (null), and the filter runs libpcap's interpreter instead; so it is where code cannot be
/// generated at run time (NativeAOT).
/// </summary>
internal static class BpfCompiler
{
    private const int Ld = 0x00, Ldx = 0x01, St = 0x02, Stx = 0x03, Alu = 0x04, Jmp = 0x05, Ret = 0x06, Misc = 0x07;
    private const int W = 0x00, H = 0x08, B = 0x10;
    private const int Imm = 0x00, Abs = 0x20, Ind = 0x40, Mem = 0x60, Len = 0x80, Msh = 0xa0;
    private const int SrcX = 0x08;

    private static readonly MethodInfo Swap32 = typeof(BinaryPrimitives).GetMethod(nameof(BinaryPrimitives.ReverseEndianness), [typeof(uint)])!;
    private static readonly MethodInfo Swap16 = typeof(BinaryPrimitives).GetMethod(nameof(BinaryPrimitives.ReverseEndianness), [typeof(ushort)])!;

    public static BpfProgramMethod? Compile(ReadOnlySpan<BpfInstruction> program)
    {
        if (!RuntimeFeature.IsDynamicCodeCompiled || program.IsEmpty || !Supported(program)) return null;
        var method = new DynamicMethod("bpf", typeof(uint), [typeof(byte*), typeof(uint), typeof(uint)], typeof(BpfCompiler).Module, skipVisibility: true);
        ILGenerator il = method.GetILGenerator();
        LocalBuilder a = il.DeclareLocal(typeof(uint)), x = il.DeclareLocal(typeof(uint));
        var memory = new LocalBuilder[16];
        for (int i = 0; i < memory.Length; i++) memory[i] = il.DeclareLocal(typeof(uint));
        Label[] at = [.. Enumerable.Range(0, program.Length).Select(_ => il.DefineLabel())];
        Label reject = il.DefineLabel();

        for (int pc = 0; pc < program.Length; pc++)
        {
            il.MarkLabel(at[pc]);
            BpfInstruction i = program[pc];
            int code = i.Code;
            uint k = i.K;
            switch (code & 0x07)
            {
                case Ld:
                    switch (code & 0xe0)
                    {
                        case Imm: Constant(il, k); break;
                        case Len: il.Emit(OpCodes.Ldarg_1); break;
                        case Mem: il.Emit(OpCodes.Ldloc, memory[k]); break;
                        case Abs or Ind: Load(il, code, k, code & 0xe0, x, reject); break;
                    }
                    il.Emit(OpCodes.Stloc, a);
                    break;
                case Ldx:
                    switch (code & 0xe0)
                    {
                        case Imm: Constant(il, k); break;
                        case Len: il.Emit(OpCodes.Ldarg_1); break;
                        case Mem: il.Emit(OpCodes.Ldloc, memory[k]); break;
                        case Msh:
                            // X = 4 * (P[k] & 0xf): an IPv4 header's length.
                            Load(il, Ld | B | Abs, k, Abs, x, reject);
                            Constant(il, 0xf);
                            il.Emit(OpCodes.And);
                            il.Emit(OpCodes.Ldc_I4_2);
                            il.Emit(OpCodes.Shl);
                            break;
                    }
                    il.Emit(OpCodes.Stloc, x);
                    break;
                case St:
                    il.Emit(OpCodes.Ldloc, a);
                    il.Emit(OpCodes.Stloc, memory[k]);
                    break;
                case Stx:
                    il.Emit(OpCodes.Ldloc, x);
                    il.Emit(OpCodes.Stloc, memory[k]);
                    break;
                case Alu:
                    Arithmetic(il, code, k, a, x, reject);
                    break;
                case Jmp:
                    if ((code & 0xf0) == 0x00)
                    {
                        il.Emit(OpCodes.Br, at[pc + 1 + (int)k]);
                        break;
                    }
                    il.Emit(OpCodes.Ldloc, a);
                    if ((code & SrcX) != 0) il.Emit(OpCodes.Ldloc, x);
                    else Constant(il, k);
                    Label yes = at[pc + 1 + i.JumpTrue], no = at[pc + 1 + i.JumpFalse];
                    switch (code & 0xf0)
                    {
                        case 0x10: il.Emit(OpCodes.Beq, yes); break;
                        case 0x20: il.Emit(OpCodes.Bgt_Un, yes); break;
                        case 0x30: il.Emit(OpCodes.Bge_Un, yes); break;
                        case 0x40:
                            il.Emit(OpCodes.And);
                            il.Emit(OpCodes.Brtrue, yes);
                            break;
                    }
                    il.Emit(OpCodes.Br, no);
                    break;
                case Ret:
                    if ((code & 0x18) == 0x10) il.Emit(OpCodes.Ldloc, a);
                    else Constant(il, k);
                    il.Emit(OpCodes.Ret);
                    break;
                case Misc:
                    il.Emit(OpCodes.Ldloc, (code & 0xf8) == 0x00 ? a : x);
                    il.Emit(OpCodes.Stloc, (code & 0xf8) == 0x00 ? x : a);
                    break;
            }
        }
        il.MarkLabel(reject);
        il.Emit(OpCodes.Ldc_I4_0);
        il.Emit(OpCodes.Ret);
        return method.CreateDelegate<BpfProgramMethod>();
    }

    // Every instruction one this compiler knows, with its operands in range, every jump inside the program, and the last
    // instruction a return (so no path runs off the end).
    private static bool Supported(ReadOnlySpan<BpfInstruction> program)
    {
        for (int pc = 0; pc < program.Length; pc++)
        {
            BpfInstruction i = program[pc];
            int code = i.Code, mode = code & 0xe0;
            bool ok = (code & 0x07) switch
            {
                Ld => (mode is Imm or Len && (code & 0x18) == W) || (mode == Mem && (code & 0x18) == W && i.K < 16)
                    || (mode is Abs or Ind && (code & 0x18) is W or H or B && i.K < 0x8000_0000),
                Ldx => (mode is Imm or Len && (code & 0x18) == W) || (mode == Mem && (code & 0x18) == W && i.K < 16) || (mode == Msh && (code & 0x18) == B && i.K < 0x8000_0000),
                St or Stx => code is St or Stx && i.K < 16,
                Alu => (code & 0xf0) switch
                {
                    0x00 or 0x10 or 0x20 or 0x40 or 0x50 or 0xa0 => true,
                    0x30 or 0x90 => (code & SrcX) != 0 || i.K != 0,
                    0x60 or 0x70 => (code & SrcX) != 0 || i.K < 32,
                    0x80 => true,
                    _ => false,
                },
                Jmp => (code & 0xf0) switch
                {
                    0x00 => (ulong)pc + 1 + i.K < (ulong)program.Length,
                    0x10 or 0x20 or 0x30 or 0x40 => pc + 1 + i.JumpTrue < program.Length && pc + 1 + i.JumpFalse < program.Length,
                    _ => false,
                },
                Ret => (code & 0x18) is 0x00 or 0x10,
                Misc => (code & 0xf8) is 0x00 or 0x80,
                _ => false,
            };
            if (!ok) return false;
        }
        return (program[^1].Code & 0x07) == Ret;
    }

    // Pushes the word, half-word or byte at k (or X + k), big-endian, widened to 32 bits; past the captured bytes, rejects.
    private static void Load(ILGenerator il, int code, uint k, int mode, LocalBuilder x, Label reject)
    {
        int size = (code & 0x18) switch { W => 4, H => 2, _ => 1 };
        // The offset as a 64-bit number (X + k cannot wrap), checked against the captured length.
        LocalBuilder offset = il.DeclareLocal(typeof(ulong));
        il.Emit(OpCodes.Ldc_I8, (long)k);
        if (mode == Ind)
        {
            il.Emit(OpCodes.Ldloc, x);
            il.Emit(OpCodes.Conv_U8);
            il.Emit(OpCodes.Add);
        }
        il.Emit(OpCodes.Stloc, offset);
        il.Emit(OpCodes.Ldloc, offset);
        il.Emit(OpCodes.Ldc_I8, (long)size);
        il.Emit(OpCodes.Add);
        il.Emit(OpCodes.Ldarg_2);
        il.Emit(OpCodes.Conv_U8);
        il.Emit(OpCodes.Bgt_Un, reject);
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Ldloc, offset);
        il.Emit(OpCodes.Conv_U);
        il.Emit(OpCodes.Add);
        switch (size)
        {
            case 4:
                il.Emit(OpCodes.Unaligned, (byte)1);
                il.Emit(OpCodes.Ldind_U4);
                il.Emit(OpCodes.Call, Swap32);
                break;
            case 2:
                il.Emit(OpCodes.Unaligned, (byte)1);
                il.Emit(OpCodes.Ldind_U2);
                il.Emit(OpCodes.Call, Swap16);
                break;
            default:
                il.Emit(OpCodes.Ldind_U1);
                break;
        }
    }

    private static void Arithmetic(ILGenerator il, int code, uint k, LocalBuilder a, LocalBuilder x, Label reject)
    {
        int op = code & 0xf0;
        bool byX = (code & SrcX) != 0;
        if (op is 0x30 or 0x90 && byX)
        {
            // bpf_filter: a division by zero rejects the packet.
            il.Emit(OpCodes.Ldloc, x);
            il.Emit(OpCodes.Brfalse, reject);
        }
        il.Emit(OpCodes.Ldloc, a);
        if (op == 0x80)
        {
            il.Emit(OpCodes.Neg);
            il.Emit(OpCodes.Stloc, a);
            return;
        }
        if (byX) il.Emit(OpCodes.Ldloc, x);
        else Constant(il, k);
        // A shift by X of 32 or more: IL, like the x86 instruction the interpreter's C shift becomes, uses the count's low 5 bits.
        il.Emit(op switch
        {
            0x00 => OpCodes.Add,
            0x10 => OpCodes.Sub,
            0x20 => OpCodes.Mul,
            0x30 => OpCodes.Div_Un,
            0x40 => OpCodes.Or,
            0x50 => OpCodes.And,
            0x60 => OpCodes.Shl,
            0x70 => OpCodes.Shr_Un,
            0x90 => OpCodes.Rem_Un,
            _ => OpCodes.Xor,
        });
        il.Emit(OpCodes.Stloc, a);
    }

    private static void Constant(ILGenerator il, uint k) => il.Emit(OpCodes.Ldc_I4, unchecked((int)k));
}
