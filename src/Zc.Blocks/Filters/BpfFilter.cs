using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ZcFlow.Buffers;
using ZcFlow.Native;

namespace ZcFlow.Filters;

/// <summary>
/// A filter in tcpdump's syntax (<c>tcp port 80 and not vlan</c>), compiled once by libpcap's
/// <c>pcap_compile</c> for Ethernet frames (and once more for packets of another first header, as they come). An AF_PACKET device hands it to the kernel, so that
/// rejected packets never reach user space; elsewhere <see cref="Matches(in PacketHandle)"/> runs it over the
/// packet's bytes: compiled to machine code through IL (<see cref="BpfCompiler"/>), or, for a program the compiler
/// does not take or where code cannot be generated, with libpcap's own interpreter. The instructions live in a pinned
/// managed array, so a filter swapped out while a worker still runs it is never freed under it.
/// </summary>
public sealed unsafe class BpfFilter
{
    private static readonly Lock CompileLock = new();
    private readonly BpfInstruction[] _program;
    private readonly BpfInstruction* _instructions;   // _program's first element: the array is pinned for its life
    private readonly BpfProgramMethod? _compiled;
    private readonly uint _link;        // the pcap LINKTYPE the program reads frames of
    private readonly int _snapLength;
    private (uint Link, BpfFilter? Filter)[] _forOtherLinks = [];   // the same expression for frames of another first header

    private BpfFilter(string expression, BpfInstruction[] program, uint link, int snapLength)
    {
        Expression = expression;
        _link = link;
        _snapLength = snapLength;
        _program = program;
        _instructions = (BpfInstruction*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(program));
        _compiled = BpfCompiler.Compile(program);
    }

    /// <summary>Whether the program runs as machine code of its own (else in libpcap's interpreter).</summary>
    internal bool IsCompiled => _compiled is not null;

    /// <summary>The expression as given.</summary>
    public string Expression { get; }

    /// <summary>Instructions of the compiled program.</summary>
    public int Length => _program.Length;

    /// <summary>
    /// Compiles <paramref name="expression"/> for Ethernet frames of up to <paramref name="snapLength"/> bytes.
    /// A syntax error throws <see cref="ArgumentException"/> with libpcap's message.
    /// </summary>
    public static BpfFilter Compile(string expression, int snapLength = 262144) => Compile(expression, snapLength, (uint)Parsing.LinkType.Ethernet);

    // For frames of the pcap LINKTYPE `link` (a DLT for pcap_open_dead: the same number but for LINKTYPE_RAW).
    private static BpfFilter Compile(string expression, int snapLength, uint link)
    {
        ArgumentNullException.ThrowIfNull(expression);
        lock (CompileLock)
        {
            nint pcap = Pcap.OpenDead(link == (uint)Parsing.LinkType.Raw ? 12 /* DLT_RAW */ : (int)link, snapLength);
            if (pcap == 0) throw new InvalidOperationException("libpcap could not open a handle to compile filters with");
            try
            {
                BpfProgram compiled;
                if (Pcap.Compile(pcap, &compiled, expression, optimize: 1, Pcap.PCAP_NETMASK_UNKNOWN) != 0)
                    throw new ArgumentException($"filter '{expression}': {Marshal.PtrToStringUTF8(Pcap.GetError(pcap))}", nameof(expression));
                try
                {
                    var program = GC.AllocateArray<BpfInstruction>((int)compiled.Length, pinned: true);
                    new ReadOnlySpan<BpfInstruction>(compiled.Instructions, (int)compiled.Length).CopyTo(program);
                    return new BpfFilter(expression, program, link, snapLength);
                }
                finally
                {
                    Pcap.FreeCode(&compiled);
                }
            }
            finally
            {
                Pcap.Close(pcap);
            }
        }
    }

    /// <summary>
    /// Reads a filter file the way <c>tcpdump -F</c> does: the whole file is the expression
    /// (lines are joined); text after a <c>#</c> on a line is a comment.
    /// </summary>
    public static BpfFilter Load(string path)
    {
        string expression = string.Join(' ', File.ReadAllLines(path).Select(l => l.Split('#', 2)[0].Trim()).Where(l => l.Length > 0));
        return Compile(expression);
    }

    /// <summary>
    /// True when the filter accepts the packet, read as the header its device said it starts with: the expression is
    /// compiled again, once, for packets of another (<c>any</c>'s cooked frames); one that means nothing there matches none.
    /// </summary>
    public bool Matches(in PacketHandle packet) => packet.LinkType == _link
        ? Matches(packet.Data, packet.WireLength)
        : ForLink(packet.LinkType)?.Matches(packet.Data, packet.WireLength) == true;

    private BpfFilter? ForLink(uint link)
    {
        foreach ((uint l, BpfFilter? f) in Volatile.Read(ref _forOtherLinks))
            if (l == link) return f;
        BpfFilter? filter;
        try { filter = Compile(Expression, _snapLength, link); }
        catch (ArgumentException) { filter = null; }
        Volatile.Write(ref _forOtherLinks, [.. _forOtherLinks, (link, filter)]);
        return filter;
    }

    /// <summary>True when the filter accepts a frame as captured, which was <paramref name="wireLength"/> bytes on the wire (0: as many as captured).</summary>
    public bool Matches(ReadOnlySpan<byte> frame, int wireLength = 0) => Run(frame, (uint)Math.Max(wireLength, frame.Length)) != 0;

    /// <summary>What libpcap's interpreter returns for the frame: the compiled program must return the same.</summary>
    internal uint Interpret(ReadOnlySpan<byte> frame, uint wireLength)
    {
        fixed (byte* p = frame) return Pcap.Filter(_instructions, p, wireLength, (uint)frame.Length);
    }

    /// <summary>What the compiled program returns for the frame (the interpreter's answer where it is not compiled).</summary>
    internal uint Run(ReadOnlySpan<byte> frame, uint wireLength)
    {
        fixed (byte* p = frame) return _compiled is { } compiled ? compiled(p, wireLength, (uint)frame.Length) : Pcap.Filter(_instructions, p, wireLength, (uint)frame.Length);
    }

    /// <summary>The compiled instructions.</summary>
    internal ReadOnlySpan<BpfInstruction> Instructions => _program;

    public override string ToString() => Expression;
}
