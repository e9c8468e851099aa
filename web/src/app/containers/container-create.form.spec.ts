import { toCreateRequest, type CreateFormValue } from './container-create.form';

const blank: CreateFormValue = { image: 'app:1', name: '', env: '', ports: '', volumes: '', restartPolicy: 'no', command: '', labels: '' };

describe('toCreateRequest', () => {
  it('turns the form lines into a create request', () => {
    const { request, errors } = toCreateRequest({
      ...blank,
      name: ' web ',
      env: 'A=1\nB=x=y',
      ports: '8080:80\n127.0.0.1:5353:53/udp\n9000',
      volumes: '/srv/data:/data\ncache:/cache:ro',
      command: 'sh\n-c\necho $(id); `x`',
      labels: 'team=core',
    });
    expect(errors).toEqual([]);
    expect(request).toEqual({
      image: 'app:1',
      name: 'web',
      restartPolicy: 'no',
      env: { A: '1', B: 'x=y' },
      labels: { team: 'core' },
      ports: [
        { containerPort: 80, hostPort: 8080, protocol: 'tcp' },
        { containerPort: 53, hostPort: 5353, hostIp: '127.0.0.1', protocol: 'udp' },
        { containerPort: 9000, protocol: 'tcp' },
      ],
      volumes: [{ source: '/srv/data', target: '/data' }, { source: 'cache', target: '/cache', readOnly: true }],
      // argv, one argument a line: never split or interpreted as a shell line
      command: ['sh', '-c', 'echo $(id); `x`'],
    });
  });

  it('names the lines it cannot read', () => {
    const { errors } = toCreateRequest({ ...blank, ports: 'eighty', volumes: '/only-one', env: 'novalue' });
    expect(errors).toEqual(['env: line 1: expected KEY=value', 'ports: "eighty" is not [ip:]host:container[/udp]', 'volumes: "/only-one" is not source:target[:ro]']);
  });
});
