import { Module } from '@nestjs/common';
import { MachinesModule } from '../machines/machines.module';
import { ProjectsModule } from '../projects/projects.module';
import { TlsModule } from '../tls/tls.module';
import { BundleController, InstallController } from './bundle.controller';
import { BundleService } from './bundle.service';

@Module({
  imports: [ProjectsModule, MachinesModule, TlsModule],
  controllers: [BundleController, InstallController],
  providers: [BundleService],
})
export class BundleModule {}
