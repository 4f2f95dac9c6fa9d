namespace ZcFlow.Samples;

/// <summary>
/// The samples' files under <c>/run/zcflow</c> (the Balancer's stats, the rules' counters): PF_RING's /proc/net/pf_ring,
/// but /proc is the kernel's. Each directory is shared as /tmp is (sticky, anyone may write), so that a process that is
/// not root, or no longer root after -D, still writes and removes its own file, and no other user can touch it.
/// </summary>
internal static class RunFile
{
    /// <summary>The directory, made if missing; false (with a warning) when it cannot be.</summary>
    public static bool Prepare(string directory)
    {
        try
        {
            const UnixFileMode Shared = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupWrite |
                UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute | UnixFileMode.StickyBit;
            Directory.CreateDirectory(directory, Shared);
            if (Environment.IsPrivilegedProcess) File.SetUnixFileMode(directory, Shared);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"warning: no {directory}: {e.Message}");
            return false;
        }
    }

    /// <summary>
    /// Writes <paramref name="text"/> as <paramref name="path"/>: into a new file (never one that is there: in a shared
    /// directory it could be anybody's link), then renamed over the old, so that readers never see half a file.
    /// False when it cannot (no directory: not root).
    /// </summary>
    public static bool Write(string path, string text)
    {
        try
        {
            string temporary = $"{path}.{Environment.ProcessId}";
            File.Delete(temporary);
            using (var w = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write)) w.Write(System.Text.Encoding.UTF8.GetBytes(text));
            File.Move(temporary, path, overwrite: true);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Removes <paramref name="file"/>, saying so when it cannot.</summary>
    public static void Remove(string? file)
    {
        try
        {
            if (file is not null) File.Delete(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"warning: {file} stays: {e.Message}");
        }
    }
}
