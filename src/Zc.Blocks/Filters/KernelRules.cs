using System.Buffers.Binary;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using ZcFlow.Native;
using static ZcFlow.Filters.Ebpf;

namespace ZcFlow.Filters;

/// <summary>
/// <see cref="Rules"/> in the kernel: an XDP program that ZcFlow writes as eBPF instructions (<see cref="Ebpf"/>) and loads
/// through libbpf, with its maps: precise rules in a hash map (6-tuple to rule id), wildcard rules in an array it walks in
/// order (two halves, one live while the other is rewritten, so a packet sees the rules before or after a change), each
/// rule's action, its counters (per CPU), the interfaces reflect rules send out of (a device map) and the AF_XDP sockets
/// of the device's queues (an XSK map). It reads a frame as <see cref="RuleFields"/> does, so both back ends decide alike;
/// "to the application" redirects to the socket of the queue the packet came in on, and to the kernel where there is none.
/// The maps follow the <see cref="Rules"/> as they change. The same program is written as an AF_PACKET socket's filter
/// (<see cref="ForPacketSocket"/>), which keeps what is for the application and no other.
/// </summary>
internal sealed unsafe partial class KernelRules : IDisposable
{
    private const int KeySize = 40;          // Rules.PreciseKey as the program lays it out on its stack
    private const int WildcardSize = 88;
    private const int DefaultSlot = Rules.MaxRules, FilteredSlot = Rules.MaxRules + 1, AddressSlot = Rules.MaxRules + 2;
    private const int AddressKeySize = 20, MaxAddresses = 1 << 16;
    private const int MaxQueues = 256;
    private const uint Used = 1u << 31;
    private const int FieldEther = 1, FieldVlan = 2, FieldProto = 4, FieldSource = 8, FieldDestination = 16, FieldSourcePort = 32, FieldDestinationPort = 64;

    private readonly Rules _rules;
    private readonly bool _socketFilter;   // the same decisions as a socket filter on an AF_PACKET socket (ForPacketSocket)

    private string Kind => _socketFilter ? "socket filter" : "XDP";
    private readonly int _precise, _wildcards, _half, _actions, _counters, _devices, _sockets, _addresses, _addressDefault;
    private int _liveHalf;
    private readonly Dictionary<(bool Source, byte Version, UInt128 Address), bool> _installed = [];

    /// <summary>The loaded program's descriptor.</summary>
    public int ProgramFd { get; }

    /// <summary>The XSK map the device puts its socket in, by queue.</summary>
    public int SocketMapFd => _sockets;

    public KernelRules(Rules rules) : this(rules, socketFilter: false)
    {
    }

    private KernelRules(Rules rules, bool socketFilter)
    {
        _rules = rules;
        _socketFilter = socketFilter;
        if (socketFilter && SocketFilterRefuses(rules) is string why) throw new ArgumentException(why);
        var fds = new List<int>();
        int Map(int type, string name, int key, int value, int entries)
        {
            int fd = Bpf.MapCreate(type, name, (uint)key, (uint)value, (uint)entries, null);
            if (fd < 0)
            {
                foreach (int f in fds) Libc.Close(f);
                throw new ErrnoException($"creating the BPF map '{name}' of the rules' {Kind} program", -fd, -fd == Libc.EPERM ? "BPF needs root (CAP_BPF, CAP_NET_ADMIN)" : null);
            }
            fds.Add(fd);
            return fd;
        }
        _precise = Map(Bpf.BPF_MAP_TYPE_HASH, "zc_precise", KeySize, 4, Rules.MaxRules);
        _wildcards = Map(Bpf.BPF_MAP_TYPE_ARRAY, "zc_wildcards", 4, WildcardSize, 2 * Rules.MaxWildcards);
        _half = Map(Bpf.BPF_MAP_TYPE_ARRAY, "zc_half", 4, 4, 1);
        _actions = Map(Bpf.BPF_MAP_TYPE_ARRAY, "zc_actions", 4, 4, Rules.MaxRules + 1);
        _counters = Map(Bpf.BPF_MAP_TYPE_PERCPU_ARRAY, "zc_counters", 4, 16, Rules.MaxRules + 3);
        _devices = Map(Bpf.BPF_MAP_TYPE_DEVMAP, "zc_reflect", 4, 4, Rules.MaxRules + 1);
        _sockets = Map(Bpf.BPF_MAP_TYPE_XSKMAP, "zc_xsks", 4, 4, MaxQueues);
        // zbalance_ipc's -Z rules (IpRules) for what goes to the application: address (16 bytes), side, version -> pass;
        // and whether there are any, with their default (0 none, 1 pass, 2 drop).
        _addresses = Map(Bpf.BPF_MAP_TYPE_HASH, "zc_addresses", AddressKeySize, 4, MaxAddresses);
        _addressDefault = Map(Bpf.BPF_MAP_TYPE_ARRAY, "zc_addr_default", 4, 4, 1);
        try
        {
            ProgramFd = Load(Program());
            SetAction(DefaultSlot, rules.DefaultAction);
            rules.Follow(Follow);
            rules.RefuseWith(Refuses, add: true);
            rules.CountAlso(Counters, add: true);
        }
        catch
        {
            foreach (int f in fds) Libc.Close(f);
            if (ProgramFd > 0) Libc.Close(ProgramFd);
            throw;
        }
    }

    /// <summary>
    /// The same rules as a socket filter for an AF_PACKET socket (<c>SO_ATTACH_BPF</c>): what goes to the application is
    /// kept, all else is not delivered (to the kernel, drop: the packet goes on into the stack either way, as it does past
    /// any packet socket), counted per rule in the kernel. It reads the frame through <c>bpf_skb_load_bytes</c>, the first
    /// 64 bytes at once and what lies past them (extension headers, ports) where the walk reaches it, with the VLAN tag the
    /// kernel took off a received frame put back in front (so VLAN rules and precise keys see the frame user space sees).
    /// Not for reflect rules (a socket filter cannot send) or a pcap filter (libpcap's stays classic BPF on the socket):
    /// those run in user space (<see cref="SocketFilterRefuses(Rules)"/>).
    /// </summary>
    public static KernelRules ForPacketSocket(Rules rules) => new(rules, socketFilter: true);

    /// <summary>Why <paramref name="rules"/> cannot run as a socket filter, or null when they can.</summary>
    public static string? SocketFilterRefuses(Rules rules)
    {
        if (rules.Filter is not null) return "a filter with rules on an AF_PACKET device runs in user space";
        foreach ((_, Rule rule) in rules.List()) if (SocketFilterRefuses(rule) is string why) return why;
        return null;
    }

    private static string? SocketFilterRefuses(Rule rule) =>
        rule.Action == RuleAction.Reflect ? $"rule '{rule}': an AF_PACKET socket's filter cannot reflect: on such a device rules with reflect run in user space" : null;

    // What this program cannot run, asked before the rules change.
    private string? Refuses(Rule rule) =>
        _socketFilter ? SocketFilterRefuses(rule)
        : rule.Action == RuleAction.Reflect && Libc.IfNameToIndex(rule.ReflectTo!) == 0 ? $"rule '{rule}': there is no interface '{rule.ReflectTo}' to reflect to in this network namespace"
        : null;

    private void Follow(int id, Rule rule, bool added, Rules.Entry[] wildcards)
    {
        if (added) Added(id, rule);
        else Removed(rule);
        if (!rule.IsPrecise) WriteWildcards(wildcards);
    }

    // Its action, its device for reflect, its counters from zero; then, for a precise rule, the key that finds it.
    private void Added(int id, Rule rule)
    {
        if (rule.Action == RuleAction.Reflect)
        {
            uint ifIndex = Libc.IfNameToIndex(rule.ReflectTo!);   // there (Refuses); gone since, the map refuses it
            Update(_devices, id, &ifIndex, $"rule '{rule}': the interface to reflect to ({rule.ReflectTo}, which needs XDP support)");
        }
        SetAction(id, rule.Action);
        int values = 16 * PossibleCpus();
        byte* zero = stackalloc byte[values];
        new Span<byte>(zero, values).Clear();
        Update(_counters, id, zero, $"rule '{rule}': its counters");
        if (!rule.IsPrecise) return;
        byte* key = stackalloc byte[KeySize];
        WriteKey(Rules.KeyOf(rule), key);
        uint value = (uint)id;
        if (Bpf.MapUpdate(_precise, key, &value, Bpf.BPF_ANY) is int rc and < 0)
            throw new ErrnoException($"rule '{rule}': adding it to the precise rules' map", -rc, -rc == Libc.ENOSPC || -rc == 7 /* E2BIG */ ? "the map is full" : null);
    }

    private void Removed(Rule rule)
    {
        if (!rule.IsPrecise) return;
        byte* key = stackalloc byte[KeySize];
        WriteKey(Rules.KeyOf(rule), key);
        Bpf.MapDelete(_precise, key);
    }

    private void SetAction(int id, RuleAction action)
    {
        uint value = (uint)action;
        Update(_actions, id, &value, "a rule's action");
    }

    private static void Update(int map, int index, void* value, string what)
    {
        uint key = (uint)index;
        int rc = Bpf.MapUpdate(map, &key, value, Bpf.BPF_ANY);
        if (rc < 0) throw new ErrnoException($"setting {what} in the kernel", -rc);
    }

    // The wildcard rules into the half not being read, in order, ended by an unused entry; then that half is made live.
    private void WriteWildcards(Rules.Entry[] all)
    {
        int half = 1 - _liveHalf;
        byte* entry = stackalloc byte[WildcardSize];
        for (int i = 0; i <= all.Length && i < Rules.MaxWildcards; i++)
        {
            new Span<byte>(entry, WildcardSize).Clear();
            if (i < all.Length) WriteWildcard(all[i].Id, all[i].Rule, new Span<byte>(entry, WildcardSize));
            Update(_wildcards, half * Rules.MaxWildcards + i, entry, "a wildcard rule");
        }
        uint live = (uint)half;
        Update(_half, 0, &live, "the wildcard rules' live half");
        _liveHalf = half;
    }

    private static void WriteWildcard(int id, Rule r, Span<byte> e)
    {
        uint fields = Used;
        if (r.EtherType is ushort type) { fields |= FieldEther; BinaryPrimitives.WriteUInt16LittleEndian(e[8..], type); }
        if (r.Vlan is ushort vlan) { fields |= FieldVlan; BinaryPrimitives.WriteUInt16LittleEndian(e[10..], vlan); }
        if (r.Protocol is byte proto) { fields |= FieldProto; e[12] = proto; }
        if (r.Source is { } s) fields |= WritePrefix(s, FieldSource, e[24..], e);
        if (r.Destination is { } d) fields |= WritePrefix(d, FieldDestination, e[56..], e);
        if (r.SourcePorts is { } sp) { fields |= FieldSourcePort; BinaryPrimitives.WriteUInt16LittleEndian(e[16..], sp.Low); BinaryPrimitives.WriteUInt16LittleEndian(e[18..], sp.High); }
        if (r.DestinationPorts is { } dp) { fields |= FieldDestinationPort; BinaryPrimitives.WriteUInt16LittleEndian(e[20..], dp.Low); BinaryPrimitives.WriteUInt16LittleEndian(e[22..], dp.High); }
        BinaryPrimitives.WriteUInt32LittleEndian(e, fields);
        BinaryPrimitives.WriteUInt32LittleEndian(e[4..], (uint)id);
    }

    // A prefix's value and mask where the entry keeps them, its IP version at byte 13; returns the field's bit.
    private static uint WritePrefix(System.Net.IPNetwork n, int field, Span<byte> at, Span<byte> entry)
    {
        entry[13] = (byte)(n.BaseAddress.AddressFamily == AddressFamily.InterNetwork ? 4 : 6);
        (UInt128 value, UInt128 mask) = Rules.Prefix(n);
        BinaryPrimitives.WriteUInt128BigEndian(at, value);
        BinaryPrimitives.WriteUInt128BigEndian(at[16..], mask);
        return (uint)field;
    }

    // Rules.PreciseKey as the program writes it on its stack: version, protocol, VLAN, ports (host order), the addresses as they lie.
    private static void WriteKey(Rules.PreciseKey k, byte* key)
    {
        var s = new Span<byte>(key, KeySize);
        s.Clear();
        s[0] = k.Version;
        s[1] = k.Protocol;
        BinaryPrimitives.WriteUInt16LittleEndian(s[2..], k.Vlan);
        BinaryPrimitives.WriteUInt16LittleEndian(s[4..], k.SourcePort);
        BinaryPrimitives.WriteUInt16LittleEndian(s[6..], k.DestinationPort);
        BinaryPrimitives.WriteUInt128BigEndian(s[8..], k.Source);
        BinaryPrimitives.WriteUInt128BigEndian(s[24..], k.Destination);
    }

    /// <summary>
    /// zbalance_ipc's <c>-Z</c> rules on what the rules give the application (null: none): an IP packet the kernel's
    /// program parsed is dropped there as <see cref="IpRules.Passes"/> would; every other packet goes up, for user space to
    /// decide. The entries are changed one by one (an address in both sets keeps its entry, so its traffic never sees a gap),
    /// then the default.
    /// </summary>
    public void SetAddresses(IpRules? rules)
    {
        var wanted = new Dictionary<(bool Source, byte Version, UInt128 Address), bool>();
        foreach (IpRule r in rules?.List() ?? []) wanted[(r.Source, r.IpVersion, r.Address)] = r.Accept;
        if (wanted.Count > MaxAddresses) throw new ArgumentException($"{wanted.Count:N0} address rules: the kernel's map holds {MaxAddresses:N0}");
        byte* key = stackalloc byte[AddressKeySize];
        uint none = 0;
        if (rules is null) Update(_addressDefault, 0, &none, "the address rules' default");
        foreach (var gone in _installed.Keys.Where(k => !wanted.ContainsKey(k)).ToList())
        {
            AddressKey(gone, key);
            Bpf.MapDelete(_addresses, key);
            _installed.Remove(gone);
        }
        foreach ((var k, bool accept) in wanted)
        {
            if (_installed.TryGetValue(k, out bool was) && was == accept) continue;
            AddressKey(k, key);
            uint value = accept ? 1u : 0u;
            if (Bpf.MapUpdate(_addresses, key, &value, Bpf.BPF_ANY) is int rc and < 0) throw new ErrnoException($"adding the address rule for {k.Address} to the kernel's map", -rc);
            _installed[k] = accept;
        }
        uint defaultValue = rules is null ? 0u : rules.AcceptByDefault ? 1u : 2u;
        Update(_addressDefault, 0, &defaultValue, "the address rules' default");
    }

    // An address rule's key as the program writes it: the address as it lies in the frame (IPv4 in the first 4 bytes), side, version.
    private static void AddressKey((bool Source, byte Version, UInt128 Address) k, byte* key)
    {
        var s = new Span<byte>(key, AddressKeySize);
        s.Clear();
        if (k.Version == 4) BinaryPrimitives.WriteUInt32BigEndian(s, (uint)k.Address);
        else BinaryPrimitives.WriteUInt128BigEndian(s, k.Address);
        s[16] = k.Source ? (byte)0 : (byte)1;
        s[17] = k.Version;
    }

    /// <summary>Packets and bytes the address rules (<see cref="SetAddresses"/>) dropped in the kernel.</summary>
    public (ulong Packets, ulong Bytes) AddressDropped => Count(AddressSlot);

    /// <summary>Packets the filter (<see cref="Rules.Filter"/>) sent to the kernel rather than to the application.</summary>
    public ulong FilteredOut => Count(FilteredSlot).Packets;

    /// <summary>Packets and bytes rule <paramref name="id"/> (-1: the default) matched in the kernel, summed over the CPUs.</summary>
    public (ulong Packets, ulong Bytes) Counters(int id) => Count(id < 0 ? DefaultSlot : (uint)id);

    private (ulong Packets, ulong Bytes) Count(uint key)
    {
        int cpus = PossibleCpus();
        ulong* values = stackalloc ulong[2 * cpus];
        if (Bpf.MapLookup(_counters, &key, values) != 0) return (0, 0);
        ulong packets = 0, bytes = 0;
        for (int c = 0; c < cpus; c++) (packets, bytes) = (packets + values[2 * c], bytes + values[2 * c + 1]);
        return (packets, bytes);
    }

    private static int _possible;

    // The CPUs a per-CPU map has a value for: the kernel's possible CPUs (libbpf's libbpf_num_possible_cpus).
    private static int PossibleCpus()
    {
        if (_possible > 0) return _possible;
        int n = Environment.ProcessorCount;
        try
        {
            string range = File.ReadAllText("/sys/devices/system/cpu/possible").Trim();
            n = range.Split(',').Sum(part => part.Split('-') is [var a] ? 1 : int.Parse(part.Split('-')[1]) - int.Parse(part.Split('-')[0]) + 1);
        }
        catch (IOException)
        {
        }
        return _possible = Math.Max(n, 1);
    }

    /// <summary>
    /// Runs the program once over <paramref name="frame"/> in the kernel (<c>BPF_PROG_TEST_RUN</c>) and returns its XDP
    /// action, or for a socket filter the bytes it keeps (0: not delivered).
    /// </summary>
    public uint TestRun(ReadOnlySpan<byte> frame)
    {
        // A socket filter's test run takes an Ethernet header off the front (eth_type_trans) and runs it on what follows;
        // on a packet socket it runs from the frame's first byte: so an Ethernet header of nothing goes in front.
        byte[] input = _socketFilter ? [.. new byte[14], .. frame] : frame.ToArray();
        fixed (byte* data = input)
        {
            var o = new BpfTestRunOptions { Size = (nuint)sizeof(BpfTestRunOptions), DataIn = data, DataSizeIn = (uint)input.Length, Repeat = 1 };
            int rc = Bpf.TestRun(ProgramFd, &o);
            if (rc != 0) throw new ErrnoException($"running the rules' {Kind} program over a test frame", -rc);
            return o.ReturnValue;
        }
    }

    private int Load(EbpfInstruction[] program)
    {
        int type = _socketFilter ? Bpf.BPF_PROG_TYPE_SOCKET_FILTER : Bpf.BPF_PROG_TYPE_XDP;
        const int LogSize = 1 << 20;
        byte* log = (byte*)NativeMemory.Alloc(LogSize);
        try
        {
            log[0] = 0;
            var options = new BpfProgramLoadOptions { Size = (nuint)sizeof(BpfProgramLoadOptions), LogLevel = 1, LogSize = LogSize, LogBuffer = log };
            fixed (EbpfInstruction* code = program)
            {
                int fd = Bpf.ProgramLoad(type, "zcflow_rules", "GPL", code, (nuint)program.Length, &options);
                if (fd >= 0) return fd;
                string text = Marshal.PtrToStringUTF8((nint)log) ?? "";
                string[] lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
                throw new ErrnoException($"loading the rules' {Kind} program ({program.Length} instructions)", -fd,
                    lines.Length == 0 ? null : "the verifier said: " + string.Join(" | ", lines.TakeLast(6)));
            }
        }
        finally
        {
            NativeMemory.Free(log);
        }
    }

    // Stack: the precise key at fp-48 (40 bytes), the frame's other fields at fp-56 (EtherType u16, tagged, is IP, has
    // ports), a map key at fp-60.
    private const short Key = -48, Fields = -56, MapKey = -60, AddressKeyAt = -88, AddressSide = AddressKeyAt + 16;
    // A socket filter's copies of the frame: its first HeadBytes at Head, a header past them at Scratch. Head is 2 bytes
    // past an 8-byte boundary, so that what follows an Ethernet header (and one or two VLAN tags) lies 4-byte aligned.
    private const short Scratch = -96, Head = -166, HeadBytes = 64, HeadZeroed = -168;
    private const short Shift = -64;   // how far before the frame's offset a byte lies in the packet (4: the kernel took a tag off)
    private const int SkbLoadBytes = 26, SkbVlanPresent = 20, SkbVlanTci = 24, SkbVlanProto = 28;   // bpf_skb_load_bytes; __sk_buff's fields
    private const uint Keep = 0x40000;   // a socket filter's "all of it", as libpcap's programs return
    private const short KeyVersion = Key, KeyProto = Key + 1, KeyVlan = Key + 2, KeySport = Key + 4, KeyDport = Key + 6, KeySource = Key + 8, KeyDestination = Key + 24;
    private const short EtherType = Fields, Tagged = Fields + 2, IsIp = Fields + 3, HasPorts = Fields + 4;

    private EbpfInstruction[] Program()
    {
        var a = new Ebpf();
        int parsed = a.Label();
        bool socket = _socketFilter;
        a.MovReg(R6, R1);
        for (short at = socket ? HeadZeroed : AddressKeyAt; at < 0; at += 8) a.StoreImmediate(Size.Double, Fp, at, 0);
        if (!socket)
        {
            a.Load(Size.Word, R7, R6, 0);   // data
            a.Load(Size.Word, R8, R6, 4);   // data_end
        }
        else
        {
            // The frame's first 64 bytes (all of it when shorter) onto the stack at Head, their count in R8; R7 points there.
            // The kernel has taken a received frame's outer VLAN tag off (vlan_present): it is put back in the copy, as
            // AfPacketDevice puts it back for user space, and what is read from the packet past the copy lies 4 bytes
            // before where the frame has it (Shift).
            int untagged = a.Label(), loaded = a.Label();
            void AtMostHead()
            {
                int fits = a.Label();
                a.JumpIf(Cond.Le, R8, HeadBytes, fits);
                a.Mov(R8, HeadBytes);
                a.Mark(fits);
            }
            a.Load(Size.Word, R8, R6, 0);   // skb->len
            a.Load(Size.Word, R2, R6, SkbVlanPresent);
            a.JumpIf(Cond.Eq, R2, 0, untagged);
            a.JumpIf(Cond.Lt, R8, 12, untagged);
            // Tagged: the MAC addresses, the tag, then what follows them in the packet.
            a.Mov(R2, 0);
            a.Mov(R4, 12);
            SkbLoad(a, Head, parsed);
            a.Load(Size.Word, R2, R6, SkbVlanProto);   // network order already
            a.Store(Size.Half, Fp, Head + 12, R2);
            a.Load(Size.Word, R2, R6, SkbVlanTci);
            a.FromBigEndian(R2, 16);
            a.Store(Size.Half, Fp, Head + 14, R2);
            a.StoreImmediate(Size.Word, Fp, Shift, 4);
            a.Alu(Op.Add, R8, 4);
            AtMostHead();
            a.MovReg(R4, R8);
            a.Alu(Op.Sub, R4, 16);
            a.JumpIf(Cond.Eq, R4, 0, loaded);
            a.Mov(R2, 12);
            SkbLoad(a, Head + 16, parsed);
            a.Jump(loaded);
            a.Mark(untagged);
            AtMostHead();
            a.JumpIf(Cond.Eq, R8, 0, parsed);
            a.Mov(R2, 0);
            a.MovReg(R4, R8);
            SkbLoad(a, Head, parsed);
            a.Mark(loaded);
            a.MovReg(R7, Fp);
            a.Alu(Op.Add, R7, Head);
        }
        // The frame has this many bytes: in the packet (XDP), or in the copy at Head (which holds all the fixed headers read).
        void Fits(int bytes, int otherwise)
        {
            if (socket) a.JumpIf(Cond.Lt, R8, bytes, otherwise);
            else a.JumpIfPast(R2, R7, bytes, R8, otherwise);
        }

        // Ethernet, and up to two VLAN tags: the outer's id kept, the EtherType after them.
        Fits(14, parsed);
        a.Load(Size.Half, R3, R7, 12);
        a.FromBigEndian(R3, 16);
        int[] l3At = [a.Label(), a.Label(), a.Label()];
        int tag1 = a.Label(), tag2 = a.Label(), storeType = a.Label();
        void IfVlan(int reg, int then)
        {
            a.JumpIf(Cond.Eq, reg, 0x8100, then);
            a.JumpIf(Cond.Eq, reg, 0x88A8, then);
            a.JumpIf(Cond.Eq, reg, 0x9100, then);
        }
        IfVlan(R3, tag1);
        a.Jump(l3At[0]);
        a.Mark(tag1);
        Fits(18, storeType);
        a.Load(Size.Half, R4, R7, 14);
        a.FromBigEndian(R4, 16);
        a.Alu(Op.And, R4, 0x0FFF);
        a.Store(Size.Half, Fp, KeyVlan, R4);
        a.StoreImmediate(Size.Byte, Fp, Tagged, 1);
        a.Load(Size.Half, R3, R7, 16);
        a.FromBigEndian(R3, 16);
        IfVlan(R3, tag2);
        a.Jump(l3At[1]);
        a.Mark(tag2);
        Fits(22, storeType);
        a.Load(Size.Half, R3, R7, 20);
        a.FromBigEndian(R3, 16);
        a.Jump(l3At[2]);
        a.Mark(storeType);
        a.Store(Size.Half, Fp, EtherType, R3);
        a.Jump(parsed);

        for (int t = 0; t < 3; t++)
        {
            short l3 = (short)(14 + 4 * t);
            int ipv4 = a.Label(), ipv6 = a.Label();
            a.Mark(l3At[t]);
            a.Store(Size.Half, Fp, EtherType, R3);
            a.JumpIf(Cond.Eq, R3, 0x0800, ipv4);
            a.JumpIf(Cond.Eq, R3, 0x86DD, ipv6);
            a.Jump(parsed);

            // IPv4: its header whole, the version 4 and the length at least 5 words; no ports in a later fragment.
            a.Mark(ipv4);
            Fits(l3 + 20, parsed);
            a.Load(Size.Byte, R4, R7, l3);
            a.MovReg(R5, R4);
            a.Alu(Op.Rsh, R5, 4);
            a.JumpIf(Cond.Ne, R5, 4, parsed);
            a.Alu(Op.And, R4, 0x0F);
            a.JumpIf(Cond.Lt, R4, 5, parsed);
            a.StoreImmediate(Size.Byte, Fp, IsIp, 1);
            a.StoreImmediate(Size.Byte, Fp, KeyVersion, 4);
            a.Load(Size.Byte, R5, R7, (short)(l3 + 9));
            a.Store(Size.Byte, Fp, KeyProto, R5);
            a.Load(Size.Word, R5, R7, (short)(l3 + 12));
            a.Store(Size.Word, Fp, KeySource, R5);
            a.Load(Size.Word, R5, R7, (short)(l3 + 16));
            a.Store(Size.Word, Fp, KeyDestination, R5);
            a.Load(Size.Half, R5, R7, (short)(l3 + 6));
            a.FromBigEndian(R5, 16);
            a.Alu(Op.And, R5, 0x1FFF);
            a.JumpIf(Cond.Ne, R5, 0, parsed);
            a.Alu(Op.Lsh, R4, 2);
            a.MovReg(socket ? R9 : R2, socket ? R4 : R7);   // where the transport header starts: a packet pointer, or an offset
            if (!socket) a.Alu(Op.Add, R2, l3);
            if (!socket) a.AluReg(Op.Add, R2, R4);
            else a.Alu(Op.Add, R9, l3);
            a.Load(Size.Byte, R3, Fp, KeyProto);
            Ports(a, parsed, socket);

            // IPv6: up to three extension headers walked; no ports in a later fragment.
            a.Mark(ipv6);
            Fits(l3 + 40, parsed);
            if (socket) a.Mov(R9, l3 + 40);
            a.Load(Size.Byte, R4, R7, l3);
            a.Alu(Op.Rsh, R4, 4);
            a.JumpIf(Cond.Ne, R4, 6, parsed);
            a.StoreImmediate(Size.Byte, Fp, IsIp, 1);
            a.StoreImmediate(Size.Byte, Fp, KeyVersion, 6);
            // Source then destination: 32 bytes in a row on both sides; by words from a socket filter's copy, which the
            // Ethernet header leaves 4-byte aligned there (the verifier takes aligned stack reads only).
            for (short w = 0; w < 32; w += (short)(socket ? 4 : 8))
            {
                a.Load(socket ? Size.Word : Size.Double, R5, R7, (short)(l3 + 8 + w));
                a.Store(socket ? Size.Word : Size.Double, Fp, (short)(KeySource + w), R5);
            }
            // The next header in R3 (R7 for a socket filter, whose loads are calls that take R1 to R5); the header at R2
            // (R9: its offset, for a socket filter, whose walk reads each header from the packet as it comes to it).
            int nextHeader = socket ? R7 : R3, at = socket ? R9 : R2;
            a.Load(Size.Byte, nextHeader, R7, (short)(l3 + 6));
            int transport = a.Label(), protocolOnly = a.Label();
            for (int ext = 0; ext < 3; ext++)
            {
                int generic = a.Label(), fragment = a.Label(), nextExt = a.Label();
                a.JumpIf(Cond.Eq, nextHeader, 0, generic);
                a.JumpIf(Cond.Eq, nextHeader, 43, generic);
                a.JumpIf(Cond.Eq, nextHeader, 60, generic);
                a.JumpIf(Cond.Eq, nextHeader, 44, fragment);
                a.Jump(transport);
                a.Mark(generic);
                int header = Header(a, socket, 8, protocolOnly);
                a.Load(Size.Byte, R5, header, (short)(socket ? Scratch + 1 : 1));
                a.Load(Size.Byte, nextHeader, header, socket ? Scratch : (short)0);
                a.Alu(Op.Add, R5, 1);
                a.Alu(Op.Lsh, R5, 3);
                a.AluReg(Op.Add, at, R5);
                a.Jump(nextExt);
                a.Mark(fragment);
                header = Header(a, socket, 8, protocolOnly);
                a.Load(Size.Half, R5, header, (short)(socket ? Scratch + 2 : 2));
                a.FromBigEndian(R5, 16);
                a.Alu(Op.And, R5, 0xFFF8);
                a.Load(Size.Byte, nextHeader, header, socket ? Scratch : (short)0);
                a.Alu(Op.Add, at, 8);
                a.JumpIf(Cond.Ne, R5, 0, protocolOnly);
                a.Mark(nextExt);
            }
            a.Mark(transport);
            a.Store(Size.Byte, Fp, KeyProto, nextHeader);
            if (socket) a.MovReg(R3, nextHeader);
            Ports(a, parsed, socket);
            a.Mark(protocolOnly);
            a.Store(Size.Byte, Fp, KeyProto, nextHeader);
            a.Jump(parsed);
        }

        // Precise rules: one lookup of the 6-tuple, for IP packets with ports.
        int wildcards = a.Label(), act = a.Label(), fallback = a.Label();
        a.Mark(parsed);
        a.Load(Size.Byte, R2, Fp, HasPorts);
        a.JumpIf(Cond.Eq, R2, 0, wildcards);
        a.Lookup(_precise, Key);
        a.JumpIf(Cond.Eq, R0, 0, wildcards);
        a.Load(Size.Word, R9, R0, 0);
        a.Jump(act);

        // Wildcard rules, in order, from the live half, until an unused entry.
        int loop = a.Label(), next = a.Label();
        a.Mark(wildcards);
        a.StoreImmediate(Size.Word, Fp, MapKey, 0);
        a.Lookup(_half, MapKey);
        a.JumpIf(Cond.Eq, R0, 0, fallback);
        // The walk's index in R7, where the verifier sees its bounds (the frame's pointers are read again from the context after).
        a.Load(Size.Word, R7, R0, 0);
        a.Alu(Op.And, R7, 1);
        a.Alu(Op.Mul, R7, Rules.MaxWildcards);
        a.Mark(loop);
        a.Store(Size.Word, Fp, MapKey, R7);
        a.Lookup(_wildcards, MapKey);
        a.JumpIf(Cond.Eq, R0, 0, fallback);
        a.MovReg(R9, R0);
        a.Load(Size.Word, R4, R9, 0);
        a.JumpIf(Cond.Eq, R4, 0, fallback);   // unused: the end of the rules
        // Each field the entry gives (its bit in R4) compared with the frame's; the first that differs: the next entry.
        int Unless(int fields)
        {
            int after = a.Label();
            a.MovReg(R2, R4);
            a.Alu(Op.And, R2, fields);
            a.JumpIf(Cond.Eq, R2, 0, after);
            return after;
        }
        void Same(Size size, short rule, short frame)
        {
            a.Load(size, R2, R9, rule);
            a.Load(size, R3, Fp, frame);
            a.JumpIfReg(Cond.Ne, R2, R3, next);
        }
        void Flag(short frame)
        {
            a.Load(Size.Byte, R2, Fp, frame);
            a.JumpIf(Cond.Eq, R2, 0, next);
        }
        int after = Unless(FieldEther);
        Same(Size.Half, 8, EtherType);
        a.Mark(after);
        after = Unless(FieldVlan);   // the frame tagged, the outer id the same
        Flag(Tagged);
        Same(Size.Half, 10, KeyVlan);
        a.Mark(after);
        int matched = Unless(FieldProto | FieldSource | FieldDestination | FieldSourcePort | FieldDestinationPort);
        Flag(IsIp);                  // any IP field: an IP packet
        after = Unless(FieldProto);
        Same(Size.Byte, 12, KeyProto);
        a.Mark(after);
        foreach ((int field, short rule, short packet) in new[] { (FieldSource, (short)24, KeySource), (FieldDestination, (short)56, KeyDestination) })
        {
            after = Unless(field);   // the same IP version, and the address under the prefix's mask
            Same(Size.Byte, 13, KeyVersion);
            for (short w = 0; w < 16; w += 8)
            {
                a.Load(Size.Double, R2, Fp, (short)(packet + w));
                a.Load(Size.Double, R3, R9, (short)(rule + 16 + w));   // the mask
                a.AluReg(Op.And, R2, R3);
                a.Load(Size.Double, R3, R9, (short)(rule + w));
                a.JumpIfReg(Cond.Ne, R2, R3, next);
            }
            a.Mark(after);
        }
        foreach ((int field, short rule, short packet) in new[] { (FieldSourcePort, (short)16, KeySport), (FieldDestinationPort, (short)20, KeyDport) })
        {
            after = Unless(field);   // ports there, and within the range
            Flag(HasPorts);
            a.Load(Size.Half, R2, Fp, packet);
            a.Load(Size.Half, R3, R9, rule);
            a.JumpIfReg(Cond.Lt, R2, R3, next);
            a.Load(Size.Half, R3, R9, (short)(rule + 2));
            a.JumpIfReg(Cond.Gt, R2, R3, next);
            a.Mark(after);
        }
        a.Mark(matched);
        a.Load(Size.Word, R9, R9, 4);
        a.Jump(act);
        a.Mark(next);
        a.Alu(Op.Add, R7, 1);
        a.MovReg(R3, R7);
        a.Alu(Op.And, R3, Rules.MaxWildcards - 1);   // the walk ends at the end of its half
        a.JumpIf(Cond.Ne, R3, 0, loop);

        // No rule: the default's slot.
        a.Mark(fallback);
        a.Mov(R9, DefaultSlot);

        // The rule's counters, then its action.
        a.Mark(act);
        a.Store(Size.Word, Fp, MapKey, R9);
        Count();
        a.Lookup(_actions, MapKey);
        int toKernel = a.Label(), reflect = a.Label();
        a.JumpIf(Cond.Eq, R0, 0, toKernel);
        a.Load(Size.Word, R2, R0, 0);
        int drop = a.Label();
        a.JumpIf(Cond.Eq, R2, (int)RuleAction.Drop, drop);
        a.JumpIf(Cond.Eq, R2, (int)RuleAction.ToKernel, toKernel);
        a.JumpIf(Cond.Eq, R2, (int)RuleAction.Reflect, reflect);
        // To the application, if the filter keeps it: the socket of the queue it came in on; to the kernel when there is none.
        int filteredOut = a.Label();
        if (_rules.Filter is { } filter)
        {
            int kept = a.Label();
            a.Load(Size.Word, R7, R6, 0);
            a.Load(Size.Word, R8, R6, 4);
            ClassicToEbpf.Emit(a, filter.Instructions, kept, filteredOut);
            a.Mark(kept);
        }
        // Then the address rules (-Z): the source looked up, then the destination, then their default; only for IP packets
        // parsed here (any other goes up, where the balancer decides as ever).
        int toSocket = a.Label(), addressDrop = a.Label();
        a.StoreImmediate(Size.Word, Fp, MapKey, 0);
        a.Lookup(_addressDefault, MapKey);
        a.JumpIf(Cond.Eq, R0, 0, toSocket);
        a.Load(Size.Word, R9, R0, 0);
        a.JumpIf(Cond.Eq, R9, 0, toSocket);
        a.Load(Size.Byte, R2, Fp, IsIp);
        a.JumpIf(Cond.Eq, R2, 0, toSocket);
        a.Load(Size.Byte, R3, Fp, KeyVersion);
        foreach ((short address, int side) in new[] { (KeySource, 0), (KeyDestination, 1) })
        {
            int notNamed = a.Label();
            for (short w = 0; w < 16; w += 8)
            {
                a.Load(Size.Double, R2, Fp, (short)(address + w));
                a.Store(Size.Double, Fp, (short)(AddressKeyAt + w), R2);
            }
            a.Load(Size.Byte, R3, Fp, KeyVersion);
            a.Alu(Op.Lsh, R3, 8);
            a.Alu(Op.Or, R3, side);
            a.Store(Size.Word, Fp, AddressSide, R3);
            a.Lookup(_addresses, AddressKeyAt);
            a.JumpIf(Cond.Eq, R0, 0, notNamed);
            a.Load(Size.Word, R2, R0, 0);
            a.JumpIf(Cond.Eq, R2, 0, addressDrop);
            a.Jump(toSocket);
            a.Mark(notNamed);
        }
        a.JumpIf(Cond.Eq, R9, 2, addressDrop);
        a.Mark(toSocket);
        if (socket)
        {
            a.Return(Keep);
        }
        else
        {
            a.LoadMap(R1, _sockets);
            a.Load(Size.Word, R2, R6, 16);
            a.Mov(R3, (int)Bpf.XDP_PASS);
            a.Call(RedirectMap);
            a.Exit();
        }
        a.Mark(addressDrop);
        a.StoreImmediate(Size.Word, Fp, MapKey, AddressSlot);
        Count();
        a.Return(socket ? 0 : Bpf.XDP_DROP);
        a.Mark(reflect);
        if (socket)
        {
            a.Return(0);   // refused before it is added (SocketFilterRefuses)
        }
        else
        {
            a.LoadMap(R1, _devices);
            a.MovReg(R2, R9);
            a.Mov(R3, (int)Bpf.XDP_DROP);
            a.Call(RedirectMap);
            a.Exit();
        }
        a.Mark(drop);
        a.Return(socket ? 0 : Bpf.XDP_DROP);
        // What the filter turned away from the application: counted apart, and to the kernel (no code where there is no filter:
        // the verifier refuses what cannot be reached).
        if (_rules.Filter is not null)
        {
            a.Mark(filteredOut);
            a.StoreImmediate(Size.Word, Fp, MapKey, FilteredSlot);
            a.Lookup(_counters, MapKey);
            a.JumpIf(Cond.Eq, R0, 0, toKernel);
            a.Load(Size.Double, R2, R0, 0);
            a.Alu(Op.Add, R2, 1);
            a.Store(Size.Double, R0, 0, R2);
        }
        a.Mark(toKernel);
        a.Return(socket ? 0 : Bpf.XDP_PASS);
        return a.Build();

        // One packet and its bytes onto the counters of the slot at MapKey (per CPU: no other writer).
        void Count()
        {
            int counted = a.Label();
            a.Lookup(_counters, MapKey);
            a.JumpIf(Cond.Eq, R0, 0, counted);
            a.Load(Size.Double, R2, R0, 0);
            a.Alu(Op.Add, R2, 1);
            a.Store(Size.Double, R0, 0, R2);
            if (socket)
            {
                // The frame's length as user space sees it: with the VLAN tag the kernel took off put back (AfPacketDevice).
                a.Load(Size.Word, R3, R6, 0);
                a.Load(Size.Word, R2, R6, SkbVlanPresent);
                a.Alu(Op.Lsh, R2, 2);
                a.AluReg(Op.Add, R3, R2);
            }
            else
            {
                a.Load(Size.Word, R7, R6, 0);
                a.Load(Size.Word, R8, R6, 4);
                a.MovReg(R3, R8);
                a.AluReg(Op.Sub, R3, R7);
            }
            a.Load(Size.Double, R2, R0, 8);
            a.AluReg(Op.Add, R2, R3);
            a.Store(Size.Double, R0, 8, R2);
            a.Mark(counted);
        }
    }

    // The ports after the transport header at R2 (a packet pointer; for a socket filter at offset R9), for the protocol in
    // R3, if they are in the frame.
    private static void Ports(Ebpf a, int parsed, bool socket)
    {
        int ports = a.Label();
        a.JumpIf(Cond.Eq, R3, 6, ports);
        a.JumpIf(Cond.Eq, R3, 17, ports);
        a.JumpIf(Cond.Eq, R3, 132, ports);
        a.Jump(parsed);
        a.Mark(ports);
        int header = Header(a, socket, 4, parsed);
        a.Load(Size.Half, R5, header, socket ? Scratch : (short)0);
        a.FromBigEndian(R5, 16);
        a.Store(Size.Half, Fp, KeySport, R5);
        a.Load(Size.Half, R5, header, socket ? (short)(Scratch + 2) : (short)2);
        a.FromBigEndian(R5, 16);
        a.Store(Size.Half, Fp, KeyDport, R5);
        a.StoreImmediate(Size.Byte, Fp, HasPorts, 1);
        a.Jump(parsed);
    }

    // The header of <bytes> at R2 if the frame holds them, else to <otherwise>; returns the register to read it from at
    // offset 0. A socket filter copies them from offset R9 of the packet to the stack at Scratch (the frame pointer's).
    private static int Header(Ebpf a, bool socket, int bytes, int otherwise)
    {
        if (!socket)
        {
            a.JumpIfPast(R4, R2, bytes, R8, otherwise);
            return R2;
        }
        a.MovReg(R2, R9);
        a.Load(Size.Word, R4, Fp, Shift);
        a.AluReg(Op.Sub, R2, R4);
        a.Mov(R4, bytes);
        SkbLoad(a, Scratch, otherwise);
        return Fp;
    }

    // bpf_skb_load_bytes(skb, R2, fp + to, R4): the packet's bytes from offset R2, R4 of them, onto the stack at <to>; to
    // <otherwise> when the packet has fewer.
    private static void SkbLoad(Ebpf a, short to, int otherwise)
    {
        a.MovReg(R1, R6);
        a.MovReg(R3, Fp);
        a.Alu(Op.Add, R3, to);
        a.Call(SkbLoadBytes);
        a.JumpIf(Cond.Ne, R0, 0, otherwise);
    }

    public void Dispose()
    {
        _rules.Unfollow(Follow);
        _rules.RefuseWith(Refuses, add: false);
        _rules.CountAlso(Counters, add: false);
        foreach (int fd in new[] { ProgramFd, _precise, _wildcards, _half, _actions, _counters, _devices, _sockets, _addresses, _addressDefault }) Libc.Close(fd);
    }
}
