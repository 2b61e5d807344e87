// Two builds of one file, so that the ELF edit has one owner:
//  * MSBuild's RoslynCodeTaskFactory compiles it as the build-time task (see Mae.MLNet.targets): the copy of
//    libLibTorchSharp.so in a build or publish output is fixed. Keep it dependency-free.
//  * src/Mae.MLNet compiles it with MAE_MLNET_RUNTIME (no task): Runtime/LibTorchSharpLoader fixes a per-user copy at
//    run time where there is no build output, e.g. a notebook kernel loading the packages from the NuGet cache.
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
#if MAE_MLNET_RUNTIME
namespace Mae.MLNet.Runtime;
#else
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public class MaeWeakenGlibcxxRequirement : Task
{
    const string LibraryName = GlibcxxRequirement.LibraryName;

    [Required] public string Directory { get; set; } = "";
    [Output] public string[] Patched { get; set; } = Array.Empty<string>();

    public override bool Execute()
    {
        if (!System.IO.Directory.Exists(Directory)) return true;
        var libraries = System.IO.Directory.GetFiles(Directory, LibraryName, SearchOption.AllDirectories);
        if (libraries.Length == 0) return true;
        if (GlibcxxRequirement.HostHasVersion())
        {
            Log.LogMessage(MessageImportance.Low, $"Mae.MLNet: host libstdc++ provides {GlibcxxRequirement.NeededVersion}; {LibraryName} left as shipped.");
            return true;
        }
        var patched = new List<string>();
        foreach (var path in libraries)
        {
            try
            {
                byte[] bytes = File.ReadAllBytes(path);
                switch (GlibcxxRequirement.Weaken(bytes))
                {
                    case GlibcxxRequirement.Outcome.Changed:
                        string temp = path + ".mae-tmp";
                        File.WriteAllBytes(temp, bytes);
                        File.Delete(path); // unlinks only: a hard link into the package cache keeps its content
                        File.Move(temp, path);
                        patched.Add(path);
                        Log.LogMessage(MessageImportance.Normal, $"Mae.MLNet: marked {GlibcxxRequirement.NeededVersion} weak in {path} (host libstdc++ is older than GCC 13).");
                        break;
                    case GlibcxxRequirement.Outcome.AlreadyWeak:
                    case GlibcxxRequirement.Outcome.NotRequired:
                        break;
                }
            }
            catch (Exception e) when (e is IOException || e is UnauthorizedAccessException || e is InvalidDataException)
            {
                Log.LogWarning($"Mae.MLNet: could not adjust {path}: {e.Message}. TorchSharp may fail to load on this machine.");
            }
        }
        Patched = patched.ToArray();
        return true;
    }
}
#endif

/// <summary>TorchSharp 0.107's libLibTorchSharp.so asks libstdc++ for GLIBCXX_3.4.32 (GCC 13) for one symbol that no
/// relocation uses; this finds whether the host has that version and marks the requirement weak in an ELF image.</summary>
static class GlibcxxRequirement
{
    internal const string LibraryName = "libLibTorchSharp.so";
    internal const string NeededVersion = "GLIBCXX_3.4.32";
    const uint ShtGnuVerneed = 0x6ffffffe;
    const ushort VerFlgWeak = 0x2;

    internal static bool HostHasVersion()
    {
        string[] candidates =
        {
            "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6",
            "/usr/lib/aarch64-linux-gnu/libstdc++.so.6", "/lib/aarch64-linux-gnu/libstdc++.so.6",
            "/usr/lib64/libstdc++.so.6", "/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
        };
        byte[] needle = Encoding.ASCII.GetBytes(NeededVersion + "\0");
        foreach (var candidate in candidates)
            if (File.Exists(candidate) && IndexOf(File.ReadAllBytes(candidate), needle) >= 0) return true;
        // Not found where we look: weaken anyway. A weak requirement is harmless where the version exists.
        return false;
    }

    internal enum Outcome { Changed, AlreadyWeak, NotRequired }

    // Walks .gnu.version_r (Elf64 little-endian) and sets VER_FLG_WEAK on the Vernaux entry named GLIBCXX_3.4.32.
    internal static Outcome Weaken(byte[] elf)
    {
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
            throw new InvalidDataException("not an ELF file");
        if (elf[4] != 2 || elf[5] != 1) throw new InvalidDataException("not a 64-bit little-endian ELF file");
        ulong shoff = U64(elf, 0x28);
        int shentsize = U16(elf, 0x3A), shnum = U16(elf, 0x3C);
        var outcome = Outcome.NotRequired;
        for (int i = 0; i < shnum; i++)
        {
            int sh = Checked(elf, shoff + (ulong)(i * shentsize), 64);
            if (U32(elf, sh + 4) != ShtGnuVerneed) continue;
            int offset = Checked(elf, U64(elf, sh + 0x18), 16);
            uint link = U32(elf, sh + 0x28), count = U32(elf, sh + 0x2C);
            int strtabHeader = Checked(elf, shoff + (ulong)(link * shentsize), 64);
            int strtab = Checked(elf, U64(elf, strtabHeader + 0x18), 1);
            int need = offset;
            for (uint n = 0; n < count; n++)
            {
                int aux = Checked(elf, (ulong)need + U32(elf, need + 8), 16);
                int auxCount = U16(elf, need + 2);
                for (int a = 0; a < auxCount; a++)
                {
                    string name = CString(elf, strtab + (int)U32(elf, aux + 8));
                    if (name == NeededVersion)
                    {
                        ushort flags = (ushort)U16(elf, aux + 4);
                        if ((flags & VerFlgWeak) != 0) { if (outcome != Outcome.Changed) outcome = Outcome.AlreadyWeak; }
                        else
                        {
                            flags |= VerFlgWeak;
                            elf[aux + 4] = (byte)flags; elf[aux + 5] = (byte)(flags >> 8);
                            outcome = Outcome.Changed;
                        }
                    }
                    uint nextAux = U32(elf, aux + 12);
                    if (nextAux == 0) break;
                    aux = Checked(elf, (ulong)aux + nextAux, 16);
                }
                uint next = U32(elf, need + 12);
                if (next == 0) break;
                need = Checked(elf, (ulong)need + next, 16);
            }
        }
        return outcome;
    }

    static int Checked(byte[] b, ulong offset, int size)
    {
        if (offset + (ulong)size > (ulong)b.Length) throw new InvalidDataException("ELF structure points outside the file");
        return (int)offset;
    }
    static int U16(byte[] b, int o) => b[o] | (b[o + 1] << 8);
    static uint U32(byte[] b, int o) => BitConverter.ToUInt32(b, o);
    static ulong U64(byte[] b, int o) => BitConverter.ToUInt64(b, o);
    static string CString(byte[] b, int o)
    {
        int end = o;
        while (end < b.Length && b[end] != 0) end++;
        return Encoding.ASCII.GetString(b, o, end - o);
    }
    static int IndexOf(byte[] haystack, byte[] needle)
    {
        for (int i = 0; i + needle.Length <= haystack.Length; i++)
        {
            if (haystack[i] != needle[0]) continue;
            int j = 1;
            while (j < needle.Length && haystack[i + j] == needle[j]) j++;
            if (j == needle.Length) return i;
        }
        return -1;
    }
}
