using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Mae.MLNet.Training;

/// <summary>
/// The torchrun-style bootstrap of NCCL (no MPI): rank 0 creates the <c>ncclUniqueId</c> and serves it over TCP; every
/// other rank connects to <c>MASTER_ADDR</c>, says which rank of which world size it is, and receives the id. Then all
/// call <c>ncclCommInitRank</c>. The port is <c>MASTER_PORT</c> + 1: torchrun's own agent already listens on
/// <c>MASTER_PORT</c> (its TCPStore), and a second listener there would fail. Every wait is bounded by the collective
/// timeout: rank 0 names the ranks that never came, the others the address they could not reach. A peer with another
/// world size or a rank already seen is refused (told why, and rank 0 fails too): a job is never formed from two.
/// </summary>
internal static class NcclRendezvous
{
    static ReadOnlySpan<byte> Magic => "MAENCCL1"u8;
    const int HelloBytes = 16;

    /// <summary>Where rank 0 serves the id: <c>MASTER_ADDR</c> and <c>MASTER_PORT</c> + 1, read through
    /// <paramref name="variable"/>; a missing or malformed one throws naming it.</summary>
    public static (string Address, int Port) Endpoint(Func<string, string?> variable)
    {
        string? address = variable("MASTER_ADDR");
        if (string.IsNullOrWhiteSpace(address))
            throw new MaeCollectiveException("WORLD_SIZE > 1 without an MPI launcher (torchrun-style) needs MASTER_ADDR (rank 0's host) to bootstrap NCCL; it is not set.");
        string? portText = variable("MASTER_PORT");
        if (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port < 1 || port > 65534)
            throw new MaeCollectiveException($"MASTER_PORT is '{portText}'; expected a TCP port from 1 to 65534 (NCCL's id is served on MASTER_PORT + 1).");
        return (address.Trim(), port + 1);
    }

    /// <summary>Rank 0: <paramref name="create"/>s the id and hands it to the <paramref name="worldSize"/> − 1 other ranks;
    /// others: fetch it from <paramref name="address"/>:<paramref name="port"/>. Returns the id on every rank.</summary>
    public static byte[] Exchange(int rank, int worldSize, string address, int port, Func<byte[]> create, TimeSpan timeout)
    {
        if (worldSize < 1 || rank < 0 || rank >= worldSize)
            throw new ArgumentOutOfRangeException(nameof(rank), rank, $"rank {rank} of a world of {worldSize}");
        return rank == 0 ? Serve(worldSize, port, create(), timeout) : Fetch(rank, worldSize, address, port, timeout);
    }

    static byte[] Serve(int worldSize, int port, byte[] id, TimeSpan timeout)
    {
        if (worldSize == 1) return id;
        var listener = TcpListener.Create(port);   // every local address, IPv6 and IPv4 where the system has both
        try { listener.Start(worldSize); }
        catch (SocketException e)
        {
            throw new MaeCollectiveException($"Rank 0 could not listen on TCP port {port} (MASTER_PORT + 1) to hand out NCCL's id: {e.Message}.", e);
        }
        var clock = Stopwatch.StartNew();
        var served = new SortedSet<int>();
        try
        {
            while (served.Count < worldSize - 1)
            {
                var left = timeout - clock.Elapsed;
                var accept = listener.AcceptTcpClientAsync();
                if (left <= TimeSpan.Zero || !accept.Wait(left))
                {
                    var missing = Enumerable.Range(1, worldSize - 1).Where(r => !served.Contains(r));
                    throw new MaeCollectiveException(
                        $"Rank 0 waited {timeout.TotalSeconds:G4} s on TCP port {port} for the other ranks to fetch NCCL's id; rank(s) {string.Join(", ", missing)} never came " +
                        "(not started, another MASTER_ADDR/MASTER_PORT, or a firewall). MAE_COLLECTIVE_TIMEOUT_S sets the wait.");
                }
                using var client = accept.Result;
                client.ReceiveTimeout = client.SendTimeout = (int)Math.Clamp((timeout - clock.Elapsed).TotalMilliseconds, 1000, int.MaxValue);
                var stream = client.GetStream();
                var hello = new byte[HelloBytes];
                try { stream.ReadExactly(hello); }
                catch (Exception e) when (e is IOException or EndOfStreamException) { continue; }   // a stray connection (a port scan): not a rank
                if (!hello.AsSpan(0, 8).SequenceEqual(Magic)) continue;
                int peer = BinaryPrimitives.ReadInt32LittleEndian(hello.AsSpan(8)), peerWorld = BinaryPrimitives.ReadInt32LittleEndian(hello.AsSpan(12));
                string? refusal = peerWorld != worldSize ? $"rank {peer} says WORLD_SIZE is {peerWorld}, rank 0 has {worldSize}"
                    : peer < 1 || peer >= worldSize ? $"a peer says it is rank {peer} of {worldSize}"
                    : served.Contains(peer) ? $"rank {peer} came twice (two processes with one RANK)" : null;
                if (refusal is not null)
                {
                    var text = Encoding.UTF8.GetBytes(refusal);
                    stream.WriteByte(1);
                    stream.Write(BitConverter.GetBytes(text.Length));
                    stream.Write(text);
                    throw new MaeCollectiveException($"The torchrun-style job does not fit together: {refusal}; no NCCL communicator is formed.");
                }
                stream.WriteByte(0);
                stream.Write(id);
                served.Add(peer);
            }
        }
        finally { listener.Stop(); }
        return id;
    }

    static byte[] Fetch(int rank, int worldSize, string address, int port, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        Exception? last = null;
        while (clock.Elapsed < timeout)
        {
            try
            {
                using var client = new TcpClient();
                var connect = client.ConnectAsync(address, port);
                if (!connect.Wait(TimeSpan.FromSeconds(Math.Min(5, Math.Max(0.1, (timeout - clock.Elapsed).TotalSeconds)))))
                    throw new TimeoutException("the connection attempt timed out");
                client.ReceiveTimeout = client.SendTimeout = (int)Math.Clamp((timeout - clock.Elapsed).TotalMilliseconds, 1000, int.MaxValue);
                var stream = client.GetStream();
                var hello = new byte[HelloBytes];
                Magic.CopyTo(hello);
                BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(8), rank);
                BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(12), worldSize);
                stream.Write(hello);
                int status = stream.ReadByte();
                if (status == 0)
                {
                    var id = new byte[NcclNative.UniqueIdBytes];
                    stream.ReadExactly(id);
                    return id;
                }
                if (status == 1)
                {
                    var length = new byte[4];
                    stream.ReadExactly(length);
                    var text = new byte[Math.Clamp(BitConverter.ToInt32(length), 0, 4096)];
                    stream.ReadExactly(text);
                    throw new MaeCollectiveException($"Rank 0 refused rank {rank}: {Encoding.UTF8.GetString(text)}.");
                }
                throw new IOException("rank 0 closed the connection without an answer");
            }
            catch (MaeCollectiveException) { throw; }
            catch (Exception e) when (e is SocketException or IOException or TimeoutException or AggregateException)
            {
                last = e is AggregateException { InnerException: { } inner } ? inner : e;
                Thread.Sleep(200);   // rank 0 may not be listening yet
            }
        }
        throw new MaeCollectiveException(
            $"Rank {rank} could not fetch NCCL's id from rank 0 at {address}:{port} (MASTER_ADDR, MASTER_PORT + 1) within {timeout.TotalSeconds:G4} s" +
            $"{(last is null ? "" : $" ({last.Message})")}: is rank 0 running, and MASTER_ADDR reachable from here? MAE_COLLECTIVE_TIMEOUT_S sets the wait.", last);
    }
}
