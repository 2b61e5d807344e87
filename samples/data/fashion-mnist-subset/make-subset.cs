// Makes the Fashion-MNIST subset shipped with the samples: the first N images (and labels) of each split, copied
// byte for byte from the full IDX files into new gzip'd IDX files with the count field changed.
//
//   dotnet run make-subset.cs -- <full-dataset-dir> [train-count=4000] [test-count=1000]
//
// <full-dataset-dir> holds train-images-idx3-ubyte.gz etc. (Debian: apt-get install dataset-fashion-mnist; see the
// folder's README for where it lands). Output goes next to this file. The output is deterministic: the gzip header
// carries no name and no time.
using System.Buffers.Binary;
using System.IO.Compression;

if (args.Length < 1)
{
    Console.Error.WriteLine("usage: dotnet run make-subset.cs -- <full-dataset-dir> [train-count] [test-count]");
    return 2;
}
string source = args[0];
int trainCount = args.Length > 1 ? int.Parse(args[1]) : 4000;
int testCount = args.Length > 2 ? int.Parse(args[2]) : 1000;
string outDir = Path.GetDirectoryName(Path.GetFullPath(ThisFile()))!;

foreach (var (split, n) in new[] { ("train", trainCount), ("t10k", testCount) })
    foreach (var kind in new[] { "images-idx3-ubyte", "labels-idx1-ubyte" })
    {
        string name = $"{split}-{kind}.gz";
        byte[] full = ReadGz(Path.Combine(source, name));
        byte[] subset = Truncate(full, n, name);
        string target = Path.Combine(outDir, name);
        using (var file = File.Create(target))
        using (var gz = new GZipStream(file, CompressionLevel.SmallestSize))
            gz.Write(subset);
        Console.WriteLine($"{name}: {n} items, {subset.Length} bytes raw, {new FileInfo(target).Length} bytes gzip");
    }
return 0;

static byte[] ReadGz(string path)
{
    using var gz = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
    using var ms = new MemoryStream();
    gz.CopyTo(ms);
    return ms.ToArray();
}

// IDX: magic (0, 0, type 0x08 = ubyte, number of dimensions), then one big-endian int32 per dimension, then the data.
static byte[] Truncate(byte[] idx, int n, string name)
{
    if (idx.Length < 4 || idx[0] != 0 || idx[1] != 0 || idx[2] != 0x08)
        throw new InvalidDataException($"{name}: not an unsigned-byte IDX file.");
    int dims = idx[3];
    int header = 4 + 4 * dims;
    int count = BinaryPrimitives.ReadInt32BigEndian(idx.AsSpan(4));
    if (n < 1 || n > count) throw new ArgumentOutOfRangeException(nameof(n), $"{name} holds {count} items; asked for {n}.");
    long itemSize = 1;
    for (int d = 1; d < dims; d++) itemSize *= BinaryPrimitives.ReadInt32BigEndian(idx.AsSpan(4 + 4 * d));
    var result = idx.AsSpan(0, checked((int)(header + n * itemSize))).ToArray();
    BinaryPrimitives.WriteInt32BigEndian(result.AsSpan(4), n);
    return result;
}

static string ThisFile([System.Runtime.CompilerServices.CallerFilePath] string path = "") => path;
